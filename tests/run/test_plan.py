"""The dry-run ETA: measured wall times calibrate later estimates on the same machine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import graftlm.plan as plan
from graftlm.config import recipe_from_dict


def test_calibration_turns_estimates_into_measured_wall_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFTLM_HOME", str(tmp_path))
    recipe = recipe_from_dict({"teacher": {"model": "fake"}})
    assert plan.calibration(recipe) == {}
    # A stage estimated at 100 s with a 50 GFLOP/s benchmark took 300 s: ratio 3 at reference 50 GFLOP/s.
    plan.store_calibration(recipe, "train", 300.0, 100.0, 50.0)
    # Another stage later, estimated with a busier benchmark (25 GFLOP/s, so 2x the seconds): the ratio is
    # expressed at the reference speed, where the same work is estimated at half those seconds.
    plan.store_calibration(recipe, "generate", 100.0, 200.0, 25.0)
    cal = plan.calibration(recipe)
    assert cal["gflops"] == 50.0
    assert cal["train"] == pytest.approx(3.0)
    assert cal["generate"] == pytest.approx(1.0)  # 100 s over (200 s * 25/50 = 100 s at the reference)
    other = recipe_from_dict({"teacher": {"model": "fake"}, "train": {"student": str(tmp_path)}})
    assert plan.calibration(other) == {}  # another student: another entry


def test_the_estimate_asks_for_as_many_candidates_as_the_run() -> None:
    """`samples_per_leaf * oversample` is rounded up by generation; the estimate rounds the same way."""
    from graftlm.generate.pipeline import candidates_per_leaf
    from graftlm.taxonomy.load import load_taxonomy

    root = Path(__file__).resolve().parents[2] / "examples" / "taxonomy"
    leaf = next(leaf for leaf in load_taxonomy(root) if leaf.type.value == "freeform_skill")
    calls = {}
    for judged in (True, False):
        recipe = recipe_from_dict({"teacher": {"model": "fake"}, "generate": {
            "samples_per_leaf": 5, "oversample": 1.5, "judge_questions": judged}})
        calls[judged] = plan.estimate_leaf(leaf, recipe).calls
    assert candidates_per_leaf(recipe.generate) == 8  # 7.5 rounded up
    assert calls[True] - calls[False] == 8  # one question check per candidate


def test_the_estimate_counts_the_requests_of_facts_mode_as_generation_makes_them(tmp_path: Path) -> None:
    """Knowledge in facts mode: no per-chunk Q&A calls, one request per fact and view kind, one per chunk
    view; the count equals the requests a fake-teacher run makes for the same leaf."""
    from graftlm.generate.run import run_generate
    from graftlm.taxonomy.docrepo import prepare_local_documents
    from graftlm.taxonomy.load import load_taxonomy

    examples = Path(__file__).resolve().parents[2] / "examples"
    shutil.copytree(examples, tmp_path / "examples", ignore=shutil.ignore_patterns("documents-repo"))
    root = tmp_path / "examples" / "taxonomy"
    prepare_local_documents(root)  # as `graft run` does: the leaf's document repository from its folder
    leaf = next(leaf for leaf in load_taxonomy(root) if leaf.is_knowledge)
    gen = {"facts": "sentences", "aux_tasks": ["atomic_facts"], "judge_knowledge": False,
           "views": {"qa": 0, "question": 1, "reverse_qa": 1, "paraphrase": 0, "relations": 1, "rewrites": ["faq"]}}
    recipe = recipe_from_dict({"teacher": {"model": "fake"}, "generate": gen})
    out = run_generate(root, tmp_path / "gen", recipe, leaves=[leaf], progress=False)  # fetches the documents
    manifest = json.loads((out / "manifest.json").read_text())
    est = plan.estimate_leaf(leaf, recipe)  # the plan reads documents already fetched
    assert est.coverage is not None
    assert est.calls == est.coverage.facts * 2 + est.chunks * 3  # question + reverse_qa; relation, faq, aux
    assert manifest["calls"]["teacher"]["requests"] == est.calls
