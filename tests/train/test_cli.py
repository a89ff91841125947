"""`graft mix` and `graft train` through the real command-line entry point."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from graftlm.artifacts import read_json
from graftlm.cli import main


def test_mix_then_train_from_mix_dir(tiny_model: Path, generate_dir: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    assert main(["mix", str(generate_dir), "--out", str(tmp_path / "mix"), "--strategy", "stacked"]) == 0
    out = capsys.readouterr().out
    assert "stacked" in out and "mix written to" in out
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"train": {"max_seq_len": 512, "max_tokens_per_row": 512, "warmup_steps": 1,
                                                "num_threads": 1, "learning_rate": 1e-3}}))
    caplog.set_level(logging.INFO, logger="graftlm.train")
    code = main(["train", str(tmp_path / "mix"), "--recipe", str(recipe), "--out", str(tmp_path / "train"),
                 "--student", str(tiny_model), "--epochs", "1", "--batch-size", "8"])
    assert code == 0
    out = capsys.readouterr().out
    manifest = read_json(tmp_path / "train" / "manifest.json")
    assert manifest["phases"] == ["stacked"] and f"final model: {manifest['final_model']}" in out
    step_lines = [r.getMessage() for r in caplog.records if " step " in r.getMessage()]
    assert step_lines and all(k in step_lines[0] for k in ("loss", "lr", "grad_norm", "tokens/s", "stacked step 1/2"))


def test_train_rejects_a_folder_that_is_neither(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "neither a generate folder" in err and "hint:" in err and "Traceback" not in err


def test_bad_recipe_key_names_file_and_line(tmp_path: Path, generate_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochs: 2\n  batch_sise: 4\n")
    assert main(["train", str(generate_dir), "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{recipe}:3" in err and "batch_sise" in err
