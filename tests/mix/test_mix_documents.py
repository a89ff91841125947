"""The knowledge phase's document view: the leaf's own text, trained on every token, at a set ratio."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from graftlm.artifacts import read_jsonl, read_manifest, write_json, write_jsonl
from graftlm.config.train import MixConfig
from graftlm.errors import InputError
from graftlm.mix import (
    build_phases,
    document_copies,
    document_samples,
    held_out_groups,
    read_chunks,
    run_mix,
    trainable_chunks,
)
from graftlm.records import Sample
from tests.samples import make_generate_dir, sample

LEAF = "knowledge->x"


def _chunks(n: int, leaf: str = LEAF) -> list[dict[str, object]]:
    return [{"leaf": leaf, "chunk_id": f"{leaf[-1]}c{i}", "doc": f"docs/island-{i}.md", "doc_sha256": "ab" * 32,
             "text": f"## Part {i}\n\nThe island has {i + 3} harbours and a lighthouse.", "tokens": 12}
            for i in range(n)]


def _knowledge(n: int, *, unmask: int = 0) -> list[Sample]:
    return ([sample(f"ks{i}", "knowledge", 6) for i in range(n)]
            + [sample(f"ku{i}", "knowledge", 20, unmask=True, task="extractive_summary") for i in range(unmask)])


def test_document_samples_train_every_token_of_the_chunk() -> None:
    (doc,) = document_samples(_chunks(1))
    assert doc.unmask and doc.id == "doc-xc0"
    assert doc.messages[-1] == {"role": "assistant", "content": _chunks(1)[0]["text"]}
    assert "island-0.md" in doc.messages[1]["content"]
    assert doc.metadata["task"] == "document" and doc.metadata["leaf"] == LEAF
    assert doc.metadata["branch"] == "knowledge" and doc.metadata["chunk_id"] == "xc0"


@pytest.mark.parametrize(("chunks", "qa", "style", "ratio", "expected"), [
    (3, 10, 0, 1.0, 10),   # one document-style sample per Q&A sample
    (3, 10, 4, 1.0, 6),    # generated summaries count toward the ratio
    (3, 10, 0, 0.5, 5),
    (3, 10, 0, 0.0, 3),    # never fewer than one copy of each chunk
    (3, 2, 9, 1.0, 3),
    (4, 0, 0, 2.0, 4),
])
def test_document_copies(chunks: int, qa: int, style: int, ratio: float, expected: int) -> None:
    assert document_copies(chunks, qa, style, ratio) == expected


def test_knowledge_1_gets_the_documents_at_the_ratio_and_replays_them() -> None:
    docs = document_samples(_chunks(3))
    cfg = MixConfig(document_ratio=2.0, short_response_words=50, knowledge_2_replay=1.0)
    phases, _ = build_phases(_knowledge(8) + [sample("kl0", "knowledge", 100)], cfg, documents=docs)
    k1 = phases[0]
    assert k1.name == "knowledge-1"
    assert k1.counts == {"own": 8, "document": 16, "replay": 0, "extra": 0}
    copies = Counter(s.id for s in k1.samples if s.metadata["mix"] == "document")
    assert set(copies) == {"doc-xc0", "doc-xc1", "doc-xc2"} and all(5 <= c <= 6 for c in copies.values())
    # knowledge-2 replays all of knowledge-1, document text included
    replayed = [s for s in phases[1].samples if s.metadata["mix"] == "replay"]
    assert sum(1 for s in replayed if s.metadata["task"] == "document") == 16
    # the same inputs mix the same way
    again, _ = build_phases(_knowledge(8) + [sample("kl0", "knowledge", 100)], cfg, documents=docs)
    assert [s.id for s in again[0].samples] == [s.id for s in k1.samples]


def test_ratio_is_per_leaf_and_counts_generated_document_style_samples() -> None:
    other = [Sample(f"o{i}", s.messages, {**s.metadata, "leaf": "knowledge->y"}) for i, s in enumerate(_knowledge(2))]
    docs = document_samples(_chunks(2) + _chunks(1, leaf="knowledge->y"))
    phases, _ = build_phases(_knowledge(6, unmask=2) + other, MixConfig(strategy="stacked", document_ratio=1.0),
                             documents=docs)
    (stacked,) = phases
    by_leaf = Counter(s.metadata["leaf"] for s in stacked.samples if s.metadata["mix"] == "document")
    assert by_leaf == {LEAF: 4, "knowledge->y": 2}  # 6 Q&A - 2 summaries; 2 Q&A
    assert stacked.counts["document"] == 6 and stacked.counts["own"] == 10


def test_without_chunks_nothing_changes() -> None:
    plain, _ = build_phases(_knowledge(5), MixConfig())
    same, _ = build_phases(_knowledge(5), MixConfig(), documents=[])
    assert [s.id for s in plain[0].samples] == [s.id for s in same[0].samples]
    assert "document" not in plain[0].counts


def test_run_mix_reads_chunks_of_the_generate_folder(tmp_path: Path) -> None:
    gen = make_generate_dir(tmp_path / "g")
    leaf = next(iter(read_jsonl(gen / "train.jsonl")))["metadata"]["leaf"]
    write_jsonl(gen / "chunks.jsonl", _chunks(2, leaf=leaf))
    out = run_mix(gen, tmp_path / "mix", MixConfig(document_ratio=1.0))
    k1 = next(p for p in read_manifest(out)["phases"] if p["name"] == "knowledge-1")  # type: ignore[index]
    assert k1["counts"]["document"] == 6  # 6 short Q&A in the fixture
    lines = list(read_jsonl(out / "knowledge-1.jsonl"))
    assert sum(1 for r in lines if r["metadata"]["task"] == "document" and r["unmask"]) == 6
    # a changed chunks file is a changed input: the mix is rewritten
    write_jsonl(gen / "chunks.jsonl", _chunks(3, leaf=leaf))
    out = run_mix(gen, tmp_path / "mix", MixConfig(document_ratio=0.0))
    k1 = next(p for p in read_manifest(out)["phases"] if p["name"] == "knowledge-1")  # type: ignore[index]
    assert k1["counts"]["document"] == 3


def test_a_bad_chunk_line_names_file_and_line(tmp_path: Path) -> None:
    gen = make_generate_dir(tmp_path / "g")
    write_jsonl(gen / "chunks.jsonl", [*_chunks(1), {"leaf": LEAF, "chunk_id": "z"}])
    with pytest.raises(InputError) as e:
        read_chunks(gen)
    assert e.value.location is not None and e.value.location.line == 2 and e.value.location.field == "text"
    assert read_chunks(tmp_path) == []


def test_held_out_chunks_are_never_trained_as_document_text(tmp_path: Path) -> None:
    """A chunk whose generated items the split holds out (test or selection) stays out of the document view."""
    gen = make_generate_dir(tmp_path / "g")
    leaf = next(iter(read_jsonl(gen / "train.jsonl")))["metadata"]["leaf"]
    chunks = _chunks(4, leaf=leaf)
    write_jsonl(gen / "chunks.jsonl", chunks)
    manifest = read_manifest(gen) or {}
    split = {"by": "chunk", "test": [f"chunk:{chunks[1]['chunk_id']}"], "selection": [f"chunk:{chunks[3]['chunk_id']}"]}
    manifest.setdefault("leaves", {}).setdefault(leaf, {})["split"] = split
    write_json(gen / "manifest.json", manifest)
    assert held_out_groups(manifest) == {f"chunk:{chunks[1]['chunk_id']}", f"chunk:{chunks[3]['chunk_id']}"}
    out = run_mix(gen, tmp_path / "mix", MixConfig(document_ratio=1.0))
    trained = {r["metadata"]["chunk_id"] for r in read_jsonl(out / "knowledge-1.jsonl") if r["metadata"]["task"] == "document"}
    assert trained == {chunks[0]["chunk_id"], chunks[2]["chunk_id"]}
    assert trainable_chunks(chunks, set()) == chunks
