"""Bad input to `graft run` and `graft export` gives a clear error (file, line, field, fix), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftlm.cli import main
from graftlm.testing.taxonomy import write_leaf

ROOT = Path(__file__).resolve().parents[2]


def skill_leaf(root: Path, seeds: int = 5) -> Path:
    return write_leaf(root, "compositional_skills/writing/polite", {
        "version": 3, "created_by": "tests", "task_description": "Be polite.",
        "seed_examples": [{"question": f"Make this polite: do {i}.", "answer": f"Could you please do {i}?"}
                          for i in range(seeds)],
    })


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_unknown_recipe_key_names_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skill_leaf(tmp_path / "tax")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("teacher:\n  model: fake\ntrain:\n  epoch: 3\n", encoding="utf-8")
    code, err = run(capsys, "run", tmp_path / "tax", "--recipe", recipe, "--out", tmp_path / "out")
    assert code == 2
    assert f"{recipe}:4" in err and "train.epoch" in err and "unknown key" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_missing_taxonomy_and_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "run", tmp_path / "nope", "--recipe", ROOT / "recipes" / "cpu-demo.yaml",
                    "--out", tmp_path / "out")
    assert code == 2 and "taxonomy folder not found" in err and "hint:" in err
    code, err = run(capsys, "run", tmp_path, "--recipe", tmp_path / "missing.yaml", "--out", tmp_path / "out")
    assert code == 2 and "recipe not found" in err


def test_invalid_leaf_is_reported_with_its_line_before_anything_runs(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    qna = skill_leaf(tmp_path / "tax", seeds=3)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("teacher:\n  model: fake\n", encoding="utf-8")
    code, err = run(capsys, "run", tmp_path / "tax", "--recipe", recipe, "--out", tmp_path / "out")
    assert code != 0
    assert str(qna) in err and "seed_examples" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "generate").exists()


def test_missing_student_model_fails_before_generation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skill_leaf(tmp_path / "tax")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"teacher:\n  model: fake\ntrain:\n  student: {tmp_path / 'no-model'}\n", encoding="utf-8")
    code, err = run(capsys, "run", tmp_path / "tax", "--recipe", recipe, "--out", tmp_path / "out")
    assert code == 2 and "train.student" in err and "model not found" in err
    assert not (tmp_path / "out" / "generate").exists()


def test_bad_set_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skill_leaf(tmp_path / "tax")
    code, err = run(capsys, "run", tmp_path / "tax", "--recipe", ROOT / "recipes" / "cpu-demo.yaml",
                    "--out", tmp_path / "out", "--set", "train.epochs")
    assert code == 2 and "KEY=VALUE" in err
    code, err = run(capsys, "run", tmp_path / "tax", "--recipe", ROOT / "recipes" / "cpu-demo.yaml",
                    "--out", tmp_path / "out", "--set", "train.epochs=zero")
    assert code == 2 and "train.epochs" in err


def test_export_of_an_unfinished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run" / "generate").mkdir(parents=True)
    code, err = run(capsys, "export", tmp_path / "run", "--to", tmp_path / "model")
    assert code == 2 and "no finished training" in err and "graft run" in err
    assert not (tmp_path / "model").exists()
