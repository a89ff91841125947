"""`graft eval`, `graft report` and the checkpoint scorer used by training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graftlm.cli import main
from graftlm.config import recipe_from_dict
from graftlm.errors import InputError
from graftlm.evaluate.selection import _subset, make_scorer

from .eval_helpers import KNOWLEDGE_LEAF, make_run_dir


def test_graft_eval_prints_a_table_and_writes_scores(generate_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    rc = main(["eval", "fake", "--data", str(generate_dir), "--base", "fake", "--judge", "fake", "--out", str(out),
               "--mt-bench", "2", "--max-items", "4"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert KNOWLEDGE_LEAF in printed and "not significant" in printed and "retention: MT-Bench" in printed
    scores = json.loads((out / "scores.json").read_text())
    assert scores["judge"] == "fake" and scores["leaves"][KNOWLEDGE_LEAF]["items"] == 4


def test_graft_eval_reports_bad_input_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["eval", "fake", "--data", str(tmp_path / "nope"), "--judge", "fake", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "has no eval.jsonl" in err and "hint:" in err and "Traceback" not in err
    rc = main(["eval", str(tmp_path / "missing-model"), "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2


def test_graft_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run_dir(tmp_path / "run", ("generate",))
    assert main(["report", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert (run / "report" / "report.html").is_file()


def test_scorer_fails_early_without_eval_items(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        make_scorer(tmp_path, recipe_from_dict({}))


def test_subset_is_fixed_and_spread_over_leaves(generate_dir: Path) -> None:
    from graftlm.evaluate.run import load_items

    items = load_items(generate_dir)
    a = _subset(items, 5, seed=3)
    assert [i.id for i in a] == [i.id for i in _subset(list(reversed(items)), 5, seed=3)]
    assert len({i.leaf for i in a}) == 3 and len(a) == 5


def test_scorer_on_a_tiny_checkpoint(generate_dir: Path, tiny_model: Path) -> None:
    import torch

    torch.set_num_threads(2)
    recipe = recipe_from_dict({"teacher": {"device": "cpu"}, "judge": {"model": "fake"},
                               "eval": {"max_new_tokens": 8, "selection_items": 4}})
    score = make_scorer(generate_dir, recipe)
    knowledge = score(tiny_model, "knowledge")
    assert 0.0 <= knowledge <= 1.0  # token F1
    assert score(tiny_model, "knowledge") == knowledge  # greedy: the same checkpoint scores the same
    skills = score(tiny_model, "skills")
    assert 1.0 <= skills <= 10.0  # the judge's scale
    forced = make_scorer(generate_dir, recipe.model_copy(update={"eval": recipe.eval.model_copy(
        update={"selection_metric": "f1"})}))
    assert 0.0 <= forced(tiny_model, "skills") <= 1.0
