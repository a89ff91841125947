"""Held-out splits without leakage: whole chunks leave training, the selection split is never reported."""

from __future__ import annotations

import json
from pathlib import Path

from graftlm.config import GenerateConfig, Recipe, TeacherConfig
from graftlm.generate import fake_responses
from graftlm.generate.run import run_generate
from graftlm.generate.split import SELECTION, TEST, plan_split
from graftlm.teacher.fake import FakeTeacher


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _knowledge(taxonomy: Path):  # type: ignore[no-untyped-def]
    from graftlm.taxonomy.load import load_taxonomy

    return [leaf for leaf in load_taxonomy(taxonomy) if leaf.is_knowledge]


def _generate(taxonomy: Path, out: Path, **generate: object) -> Path:
    recipe = Recipe(teacher=TeacherConfig(model="fake", max_in_flight=8),
                    generate=GenerateConfig(**{"samples_per_leaf": 40, **generate}))
    return run_generate(taxonomy, out, recipe, leaves=_knowledge(taxonomy), teacher=FakeTeacher([fake_responses.respond]),
                        progress=False)


def test_selection_reported_and_training_data_share_no_chunk(taxonomy: Path, tmp_path: Path) -> None:
    out = _generate(taxonomy, tmp_path / "gen", chunk_tokens=40, eval_generated_share=0.25, eval_selection_share=0.25)
    train = _lines(out / "train.jsonl")
    generated = [e for e in _lines(out / "eval.jsonl") if e["source"] == "generated"]
    trained = {s["metadata"]["chunk_id"] for s in train if s["metadata"].get("chunk_id")}
    test = {e["metadata"]["chunk_id"] for e in generated if e["metadata"]["split"] == TEST}
    selection = {e["metadata"]["chunk_id"] for e in generated if e["metadata"]["split"] == SELECTION}
    chunks = {c["chunk_id"] for c in _lines(out / "chunks.jsonl")}
    assert len(chunks) >= 4 and test and selection and trained
    assert not test & trained and not selection & trained and not test & selection
    assert {s["metadata"]["task"] for s in train} >= {"qa", "detailed_summary"}  # other chunks' tasks still train
    split = json.loads((out / "manifest.json").read_text())["leaves"][_knowledge(taxonomy)[0].name]["split"]
    assert split["by"] == "chunk" and split["leakage"] is None
    assert {f"chunk:{c}" for c in test} <= set(split["test"])


def test_graft_eval_never_reports_the_selection_split(taxonomy: Path, tmp_path: Path) -> None:
    from graftlm.evaluate.run import run_eval

    gen = _generate(taxonomy, tmp_path / "gen", chunk_tokens=40, eval_generated_share=0.25, eval_selection_share=0.25)
    items = _lines(gen / "eval.jsonl")
    held = {e["id"] for e in items if e["metadata"].get("split") == SELECTION}
    assert held
    recipe = Recipe(teacher=TeacherConfig(model="fake"))
    out = run_eval("fake", gen, tmp_path / "eval", recipe.model_copy(
        update={"eval": recipe.eval.model_copy(update={"multiple_choice": False, "mt_bench_questions": 0,
                                                         "judge_check_items": 0})}))
    reported = {r["item_id"] for r in _lines(out / "answers.jsonl") if "item_id" in r}
    assert reported and not reported & held
    assert reported == {e["id"] for e in items if e["metadata"].get("split", TEST) == TEST}


def test_a_leaf_with_too_few_chunks_says_held_out_items_may_leak(taxonomy: Path, tmp_path: Path) -> None:
    out = _generate(taxonomy, tmp_path / "gen", chunk_tokens=2000, eval_generated_share=0.3, eval_selection_share=0.3)
    manifest = json.loads((out / "manifest.json").read_text())
    leaf = _knowledge(taxonomy)[0].name
    split = manifest["leaves"][leaf]["split"]
    assert split["groups"] == 1 and "too few" in split["leakage"]

    from graftlm.evaluate.run import leakage_notes
    from graftlm.report import judge_trust_notes

    notes = leakage_notes(manifest)  # graft eval copies it into scores.json; the report says it
    assert list(notes) == [leaf] and "too few" in notes[leaf]
    said = [b.text for b in judge_trust_notes({"leakage": notes})]
    assert len(said) == 1 and leaf in said[0] and "share text with the training data" in said[0]


def test_plan_split_deals_whole_groups_and_keeps_one_for_training() -> None:
    groups = [f"chunk:{i}" for i in range(10) for _ in range(3)]  # three items per chunk
    plan = plan_split(groups, 0.2, 0.1, "s", "chunk")
    assert (len(plan.test), len(plan.selection), plan.groups, plan.note) == (2, 1, 10, "")
    assert plan == plan_split(list(reversed(groups)), 0.2, 0.1, "s", "chunk")  # seeded, order-free
    assert plan_split(groups[:6], 0.5, 0.5, "s", "chunk").note  # 2 chunks cannot make three parts
    assert plan_split(groups, 0.0, 0.0, "s", "chunk").test == frozenset()
