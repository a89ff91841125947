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
    html = (run / "report" / "report.html").read_text(encoding="utf-8")
    md = (run / "report" / "report.md").read_text(encoding="utf-8")
    # The generate manifest's numbers, per leaf, in both; what has not run yet is named.
    row = "| knowledge->geography->vescary | knowledge | 180 | faithfulness: 40, relevance: 12 | 14 | 114 | 10 |"
    assert row in md
    assert ("<tr><td>knowledge-&gt;geography-&gt;vescary</td><td>knowledge</td><td>180</td>"
            "<td>faithfulness: 40, relevance: 12</td><td>14</td><td>114</td><td>10</td></tr>") in html
    assert "| compositional_skills->grounded->summarization | grounded_skill | 60 | rating: 10 | 3 | 47 | 1 |" in md
    for text in (md, html):
        assert "No evaluation found (eval/scores.json is missing)" in text
        assert "No training metrics found" in text
    assert html.count("data:image/png;base64,") == 1  # the generation funnel, embedded


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
    # A random 2-layer model's 8 greedy tokens share no word with any reference, and the fake judge
    # (scoring by overlap with the reference) gives such answers the bottom of its 1..10 scale.
    assert knowledge == 0.0  # token F1
    assert score(tiny_model, "knowledge") == knowledge  # greedy: the same checkpoint scores the same
    assert score(tiny_model, "skills") == 1.0  # the judge's scale
    forced = make_scorer(generate_dir, recipe.model_copy(update={"eval": recipe.eval.model_copy(
        update={"selection_metric": "f1"})}))
    assert forced(tiny_model, "skills") == 0.0


def test_scorer_gives_a_model_that_knows_every_answer_the_top_scores(generate_dir: Path) -> None:
    """The other end of the scale: a student (over real HTTP) answering each question with its reference."""
    from graftlm.evaluate.run import load_items
    from graftlm.testing.fake_server import fake_server

    items = load_items(generate_dir)

    def knows(messages: list[dict[str, str]], options: object, index: int) -> str | None:
        return next((i.answer for i in items if i.question in messages[-1]["content"]), None)

    recipe = recipe_from_dict({"judge": {"model": "fake"}, "eval": {"max_new_tokens": 8, "selection_items": 4}})
    with fake_server([knows]) as student:
        assert make_scorer(generate_dir, recipe)(student.url, "knowledge") == 1.0
        assert make_scorer(generate_dir, recipe)(student.url, "skills") == 10.0
        forced = make_scorer(generate_dir, recipe.model_copy(update={"eval": recipe.eval.model_copy(
            update={"selection_metric": "f1"})}))
        assert forced(student.url, "skills") == 1.0
