"""Coverage accounting: kept training views per fact of a knowledge leaf, counted on a document whose facts
are known; then the same numbers in the manifest, `graft generate`'s summary, the report, the model card
and the dry-run plan's estimate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from graftlm.artifacts import hash_obj, write_jsonl
from graftlm.config import GenerateConfig, recipe_from_dict
from graftlm.generate.chunking import Chunk, chunk_document, sentences
from graftlm.generate.coverage import (
    WORDS_PER_FACT,
    Coverage,
    dedup_facts,
    estimate_coverage,
    facts_stated,
    leaf_coverage,
    uncovered_text,
)
from graftlm.generate.split import SplitPlan

LEAF = "knowledge->maritime->quillmoor"

# Six facts, two per section; with 32-token chunks each section is one chunk.
DOC = """# The Quillmoor Lighthouse

The Quillmoor Lighthouse stands on Grey Point. It was built in 1874.

## The lamp

Its lamp can be seen from 31 kilometres away. The lamp turns once every 12 seconds.

## Visitors

The lighthouse opened to visitors in 1992. Tickets cost 6 euros.
"""
FACTS = [
    "The Quillmoor Lighthouse stands on Grey Point.", "It was built in 1874.",
    "Its lamp can be seen from 31 kilometres away.", "The lamp turns once every 12 seconds.",
    "The lighthouse opened to visitors in 1992.", "Tickets cost 6 euros.",
]


def fact_record(chunk: Chunk, text: str, source: str = "sentence") -> dict[str, Any]:
    """A fact record as the contract of issue 12 fixes it."""
    start = chunk.text.find(text)
    return {"fact_id": hash_obj([LEAF, chunk.chunk_id, text])[:16], "leaf": LEAF, "chunk_id": chunk.chunk_id,
            "doc": chunk.doc, "span": [start, start + len(text)] if start >= 0 else None, "text": text,
            "source": source}


def sample(i: int, task: str, view: str | None, fact_ids: list[str], answer: str = "an answer") -> dict[str, Any]:
    meta: dict[str, Any] = {"leaf": LEAF, "task": task, "chunk_id": "c"}
    if view is not None:
        meta |= {"view": view, "fact_ids": fact_ids}
    return {"id": f"s{i}", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"},
                                        {"role": "assistant", "content": answer}], "metadata": meta}


@pytest.fixture
def chunks(tmp_path: Path) -> list[Chunk]:
    path = tmp_path / "quillmoor.md"
    path.write_text(DOC, encoding="utf-8")
    data = path.read_bytes()
    return chunk_document(path.name, hashlib.sha256(data).hexdigest(), data.decode("utf-8"), max_tokens=32)


def test_coverage_of_a_document_whose_facts_are_known(chunks: list[Chunk]) -> None:
    assert len(chunks) == 3
    assert [s for c in chunks for s in sentences(c.text)] == FACTS  # headings are no facts
    lead, lamp, visitors = chunks
    built, grey, seen, turns = (fact_record(lead, FACTS[1]), fact_record(lead, FACTS[0]),
                                fact_record(lamp, FACTS[2]), fact_record(lamp, FACTS[3]))
    held = [fact_record(visitors, t) for t in FACTS[4:]]
    # The teacher listed the building year again for the lamp's chunk, and Grey Point again for the held-out
    # chunk (listed first, yet the training chunk's fact is the one kept); one unit was journaled twice.
    dup_built = fact_record(lamp, "it was built in 1874", source="teacher")
    dup_grey = fact_record(visitors, "The Quillmoor lighthouse stands on Grey Point", source="teacher")
    raw = [dup_grey, grey, built, seen, turns, dup_built, *held, dict(seen)]
    parts = {lead.chunk_id: "train", lamp.chunk_id: "train", visitors.chunk_id: "test"}
    facts = dedup_facts(raw, 0.7, parts.__getitem__)

    assert [f["fact_id"] for f in facts] == [f["fact_id"] for f in raw[:-1]]  # order kept, the repeat once
    assert [f["part"] for f in facts] == ["test", "train", "train", "train", "train", "train", "test", "test"]
    by_text = {f["text"]: f for f in facts}
    assert by_text[dup_grey["text"]]["duplicate_of"] == grey["fact_id"]
    assert by_text[dup_built["text"]]["duplicate_of"] == built["fact_id"]
    assert sum(f["duplicate_of"] is not None for f in facts) == 2
    assert "part" not in raw[0] and "duplicate_of" not in raw[0]  # the journal's records are not changed

    faq = "Q: How far away can you see the lamp? A: From 31 kilometres, on a clear night."
    assert facts_stated(facts, faq) == [seen["fact_id"]]
    assert facts_stated(facts, "It turns every 12 seconds and was built in 1874.") == [
        built["fact_id"], turns["fact_id"], dup_built["fact_id"]]
    kept = [
        sample(0, "qa", "qa", [grey["fact_id"]]),
        sample(1, "qa", "qa", [grey["fact_id"]]),
        sample(2, "qa", "reverse_qa", [grey["fact_id"], grey["fact_id"]]),  # one sample: one view
        sample(3, "qa", "qa", [built["fact_id"]]),
        sample(4, "paraphrase", "paraphrase", [dup_built["fact_id"]]),  # counts for the fact it duplicates
        sample(5, "qa", "qa", [seen["fact_id"]]),
        sample(6, "rewrite", "rewrite:faq", facts_stated(facts, faq), faq),
        sample(7, "qa", None, []),  # a chunk Q&A without facts: no view
        sample(8, "detailed_summary", None, []),
    ]
    cov = leaf_coverage(facts, kept, target=3)
    assert cov == Coverage(facts=4, held_out=2, duplicates=2, views_min=0, views_median=2.0, target=3,
                           under_target=3, by_view={"qa": 4, "reverse_qa": 1, "paraphrase": 1, "rewrite:faq": 1},
                           uncovered=(FACTS[3],))
    assert cov.facts + cov.held_out + cov.duplicates == len(facts)
    assert json.loads(json.dumps(cov.to_json())) == {
        "facts": 4, "held_out": 2, "duplicates": 2, "views_min": 0, "views_median": 2.0, "target": 3,
        "under_target": 3, "by_view": {"paraphrase": 1, "qa": 4, "reverse_qa": 1, "rewrite:faq": 1},
        "uncovered": ["The lamp turns once every 12 seconds."]}
    assert leaf_coverage(facts, kept, target=1).under_target == 1
    # Views are counted on the samples kept: without the Q&A that covered Grey Point three times it has none.
    assert leaf_coverage(facts, kept[3:], target=3).uncovered == (FACTS[0], FACTS[3])
    assert uncovered_text(LEAF, cov.to_json()) == f'{LEAF}: 1 fact without a kept training view: "{FACTS[3]}"'


def test_uncovered_facts_beyond_the_limit_are_counted() -> None:
    cov = {"uncovered": [f"fact {i}" for i in range(8)]}
    assert uncovered_text("leaf", cov, limit=2) == ('leaf: 8 facts without a kept training view: "fact 0"; '
                                                    '"fact 1"; and 6 more')
    assert uncovered_text("leaf", {"uncovered": []}) is None


def test_the_estimate_counts_sentences_or_words(chunks: list[Chunk]) -> None:
    texts = [c.text for c in chunks]
    cfg = GenerateConfig(facts="sentences", views={"qa": 2, "reverse_qa": 1, "paraphrase": 1, "relations": 3,
                                                   "rewrites": ["faq", "newcomer"]})
    est = estimate_coverage(texts, len(texts), cfg)
    assert est is not None and (est.facts, est.basis) == (6, "sentences")
    assert est.views == 6 * (2 + 1 + 1) + 3 * (3 + 2)
    assert est.views_per_fact == pytest.approx(39 / 6)
    words = sum(len(t.split()) for t in texts)  # headings included: the teacher sees them too
    est = estimate_coverage(texts, len(texts), cfg.model_copy(update={"facts": "teacher"}))
    assert est is not None and est.basis == "words" and est.facts == -(-words // WORDS_PER_FACT)
    assert estimate_coverage(texts, len(texts), cfg.model_copy(update={"facts": "off"})) is None


def test_a_split_plan_reads_back_from_the_manifest() -> None:
    plan = SplitPlan("chunk", 5, frozenset({"chunk:a"}), frozenset({"chunk:b"}))
    back = SplitPlan.from_json(json.loads(json.dumps(plan.to_json())))
    assert back == plan and back.part("chunk:a") == "test" and back.part("chunk:c") == "train"
    assert SplitPlan.from_json({}).part("chunk:a") == "train"


# -- wiring: finish, manifest, summary, report, card, dry run -----------------------------------------------

BRINDLE = "knowledge->geography->brindle"
NO_VIEW = "The Osk River freezes for 73 days every winter."
"""A fact the teacher lists that no generated sample states."""


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _generate_cli(taxonomy: Path, out: Path) -> int:
    from graftlm.cli import main

    return main(["generate", str(taxonomy), "--out", str(out), "--teacher", "fake", "--samples-per-leaf", "8",
                 "--recipe", str(out.parent / "small-chunks.yaml")])


def _journal_facts(out: Path) -> list[dict[str, Any]]:
    """Put fact records into the journal as the facts-first generation journals them (one per sentence of
    every chunk, a repeated fact, a fact no sample states), and mark every knowledge Q&A and key-points
    candidate with the facts it states. Returns the records."""
    from graftlm.generate.pipeline import UnitResult

    chunks = [c for c in _lines(out / "chunks.jsonl") if c["leaf"] == BRINDLE]
    split = json.loads((out / "manifest.json").read_text())["leaves"][BRINDLE]["split"]
    held = set(split["test"]) | set(split["selection"])
    train_chunk = next(c for c in chunks if f"chunk:{c['chunk_id']}" not in held)

    def record(chunk: dict[str, Any], text: str) -> dict[str, Any]:
        start = chunk["text"].find(text)
        return {"fact_id": hash_obj([BRINDLE, chunk["chunk_id"], text])[:16], "leaf": BRINDLE,
                "chunk_id": chunk["chunk_id"], "doc": chunk["doc"],
                "span": [start, start + len(text)] if start >= 0 else None, "text": text, "source": "sentence"}

    facts = [record(c, s) for c in chunks for s in sentences(c["text"])]
    facts += [record(chunks[-1], facts[0]["text"].lower()), record(train_chunk, NO_VIEW)]
    of_chunk = {c["chunk_id"]: [f for f in facts if f["chunk_id"] == c["chunk_id"]] for c in chunks}
    results = [UnitResult.from_json(r) for r in _lines(out / "work" / "units.jsonl")]
    first = next(r for r in results if r.leaf == BRINDLE)
    first.facts = facts
    for r in results:
        for cand in r.candidates:
            meta = cand["metadata"]
            if meta["leaf"] == BRINDLE and meta["task"] in ("qa", "atomic_facts"):
                meta["view"] = "qa" if meta["task"] == "qa" else "rewrite:key_points"
                meta["fact_ids"] = facts_stated(of_chunk[meta["chunk_id"]], cand["messages"][2]["content"])
    write_jsonl(out / "work" / "units.jsonl", [r.to_json() for r in results])
    (out / "manifest.json").unlink()
    return facts


def test_finish_counts_coverage_of_kept_samples_into_manifest_summary_report_and_card(
        taxonomy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Generation with journaled facts (constructed here: until the facts-first tasks land, the fake teacher
    journals none), finished from the journal as a resumed run is."""
    out = tmp_path / "gen"
    (tmp_path / "small-chunks.yaml").write_text("generate: {chunk_tokens: 48, facts: \"off\"}\n", encoding="utf-8")
    assert _generate_cli(taxonomy, out) == 0
    assert "Fact coverage" not in capsys.readouterr().out  # no facts, no coverage
    first = json.loads((out / "manifest.json").read_text())
    assert "coverage" not in first["leaves"][BRINDLE]
    facts = _journal_facts(out)

    assert _generate_cli(taxonomy, out) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"]["facts"] == "facts.jsonl"
    written = _lines(out / "facts.jsonl")
    assert [f["fact_id"] for f in written] == [f["fact_id"] for f in facts]
    split = SplitPlan.from_json(manifest["leaves"][BRINDLE]["split"])
    assert split.test and split.selection  # the leaf has held-out chunks, so held-out facts exist
    for f in written:  # the reported part may be spelled `eval` in facts.jsonl
        assert {"eval": "test"}.get(f["part"], f["part"]) == split.part(f"chunk:{f['chunk_id']}")
    kept = [s for s in _lines(out / "train.jsonl") if s["metadata"]["leaf"] == BRINDLE]
    cov = manifest["leaves"][BRINDLE]["coverage"]
    assert cov == leaf_coverage(written, kept, 3).to_json()
    assert cov["duplicates"] == 1 and cov["held_out"] == sum(
        1 for f in written if f["part"] != "train" and not f["duplicate_of"]) > 0
    assert cov["facts"] + cov["held_out"] + cov["duplicates"] == len(facts)
    assert NO_VIEW in cov["uncovered"] and cov["views_min"] == 0
    # Views come from kept samples only: a Q&A of a held-out chunk states facts but is an eval item.
    journaled = [c for r in _lines(out / "work" / "units.jsonl") for c in r["candidates"]
                 if c["metadata"].get("fact_ids")]
    assert sum(cov["by_view"].values()) == sum(1 for s in kept if s["metadata"].get("view")) < len(journaled)
    assert {s["id"] for s in kept if s["metadata"].get("view")} < {c["id"] for c in journaled}
    for name, leaf in manifest["leaves"].items():
        assert ("coverage" in leaf) == (name == BRINDLE)

    assert "Fact coverage" in printed
    row = next(line for line in printed.splitlines() if line.startswith(BRINDLE) and "(< 3)" in line)
    assert row.split()[1:4] == [str(cov["facts"]), str(cov["held_out"]), "1"]
    assert f'without a kept training view: "{cov["uncovered"][0]}"' in printed

    from graftlm.export.card import model_card
    from graftlm.report import run_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "generate").symlink_to(out)
    md = (run_report(run) / "report.md").read_text()
    section = md.split("## Fact coverage of knowledge leaves")[1].split("\n## ")[0]
    assert f"| {BRINDLE} | {cov['facts']} | {cov['held_out']} | 1 | 0 |" in section
    assert "not evaluated" in section and f"- {NO_VIEW}" in section
    assert f"({len(cov['uncovered'])}):" in section
    card = model_card(run, tmp_path / "model")
    assert "## Fact coverage" in card and f"| {BRINDLE} | {cov['facts']} |" in card


def test_the_dry_run_plan_estimates_facts_from_the_chunks_generation_makes(
        taxonomy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from graftlm.cli import main
    from graftlm.plan import estimate_leaf
    from graftlm.taxonomy.load import load_taxonomy

    (tmp_path / "small-chunks.yaml").write_text("generate: {chunk_tokens: 48, facts: \"off\"}\n", encoding="utf-8")
    assert _generate_cli(taxonomy, tmp_path / "gen") == 0  # fetches the documents into the clone cache
    chunks = [c["text"] for c in _lines(tmp_path / "gen" / "chunks.jsonl") if c["leaf"] == BRINDLE]
    leaf = next(leaf for leaf in load_taxonomy(taxonomy) if leaf.name == BRINDLE)
    recipe = recipe_from_dict({"teacher": {"model": "fake"}, "generate": {"chunk_tokens": 48, "facts": "sentences"}})
    est = estimate_leaf(leaf, recipe)
    assert est.chunks == len(chunks) > 2
    assert est.coverage is not None and est.coverage.facts == sum(len(sentences(c)) for c in chunks)
    assert est.coverage.views == est.coverage.facts * 4 + len(chunks) * 6
    assert estimate_leaf(leaf, recipe_from_dict({"generate": {"facts": "off"}})).coverage is None
    skill = next(leaf for leaf in load_taxonomy(taxonomy) if not leaf.is_knowledge)
    assert estimate_leaf(skill, recipe).coverage is None

    (tmp_path / "r.yaml").write_text("teacher: {model: fake}\ngenerate: {chunk_tokens: 48, facts: sentences}\n")
    capsys.readouterr()
    assert main(["run", str(taxonomy), "--recipe", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"),
                 "--dry-run"]) == 0
    plan = capsys.readouterr().out.split("Knowledge facts and views (ESTIMATES")[1].split("\n\n")[0]
    rows = [line.split() for line in plan.splitlines() if "->" in line]
    assert [row[:3] for row in rows] == [[BRINDLE, str(est.coverage.facts), str(est.coverage.views)]]
    assert "the counted sentences" in plan



VIEW_KINDS = {"qa", "reverse_qa", "paraphrase", "relation", "rewrite:faq", "rewrite:newcomer", "rewrite:key_points"}


def test_needs_issue12_generation_end_to_end_sentence_facts_get_coverage(taxonomy: Path, tmp_path: Path) -> None:
    """Once the facts-first tasks (`graftlm.generate.facts`, developer f of issue 12) are merged: with
    `facts: sentences` the fake teacher's run records every sentence of the chunks as a fact, and its views
    are counted. Skipped on a branch without those tasks."""
    pytest.importorskip("graftlm.generate.facts")
    from graftlm.config import Recipe, TeacherConfig
    from graftlm.generate.run import run_generate

    out = tmp_path / "gen"
    recipe = Recipe(teacher=TeacherConfig(model="fake", max_in_flight=8),
                    generate=GenerateConfig(samples_per_leaf=8, chunk_tokens=48, facts="sentences"))
    run_generate(taxonomy, out, recipe, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    facts = [f for f in _lines(out / "facts.jsonl") if f["leaf"] == BRINDLE]
    chunks = {c["chunk_id"]: c["text"] for c in _lines(out / "chunks.jsonl") if c["leaf"] == BRINDLE}
    assert sorted(f["text"] for f in facts) == sorted(s for text in chunks.values() for s in sentences(text))
    for f in facts:
        assert f["source"] == "sentence"
        assert f["span"] is None or chunks[f["chunk_id"]][f["span"][0]:f["span"][1]] == f["text"]
    kept = [s for s in _lines(out / "train.jsonl") if s["metadata"]["leaf"] == BRINDLE]
    cov = manifest["leaves"][BRINDLE]["coverage"]
    assert cov == leaf_coverage(facts, kept, recipe.generate.views.target).to_json()
    assert cov["facts"] > 0 and sum(cov["by_view"].values()) > 0 and set(cov["by_view"]) <= VIEW_KINDS
