"""Data mixing: generated samples -> phase datasets, with replay buffers and extra datasets.

The LAB recipe trains in phases: `knowledge-1` (knowledge with short answers), `knowledge-2` (knowledge
with long answers plus foundational skills, replaying knowledge-1), `skills` (compositional skills plus a
replay buffer of the knowledge phases' data). The `stacked` strategy trains everything in one phase.
The knowledge phase (knowledge-1, or stacked) also gets each knowledge leaf's own document text, trained on
every token, at `mix.document_ratio` document-style samples per Q&A sample.
Everything here is a pure, seeded function of its inputs except `run_mix`, which reads and writes files.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftlm.artifacts import (
    MANIFEST,
    hash_file,
    hash_obj,
    read_jsonl,
    read_manifest,
    write_jsonl,
    write_manifest,
)
from graftlm.config.train import ExtraDataset, MixConfig
from graftlm.errors import ConfigError, InputError, Location
from graftlm.records import SYSTEM_PROMPT, Sample

log = logging.getLogger(__name__)

PHASED = ("knowledge-1", "knowledge-2", "skills")


@dataclass
class Phase:
    """One phase dataset: its own samples, replayed ones and extra ones, in training order."""

    name: str
    kind: str  # "knowledge" | "skills": which scorer selects its checkpoint
    samples: list[Sample] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def group_of(sample: Sample) -> str:
    """`knowledge`, `foundational` or `compositional`, from the sample's branch (or its leaf type)."""
    meta = sample.metadata
    branch = str(meta.get("branch") or "")
    if branch == "knowledge":
        return "knowledge"
    if branch == "foundational_skills":
        return "foundational"
    if branch == "compositional_skills":
        return "compositional"
    leaf_type = str(meta.get("leaf_type") or "")
    if leaf_type == "knowledge":
        return "knowledge"
    return "compositional"


def answer_words(sample: Sample) -> int:
    """Words in the sample's last assistant message."""
    for msg in reversed(sample.messages):
        if msg.get("role") == "assistant":
            return len(str(msg.get("content", "")).split())
    return 0


def _tagged(samples: list[Sample], source: str) -> list[Sample]:
    return [Sample(s.id, s.messages, {**s.metadata, "mix": source}, s.unmask) for s in samples]


def draw(pool: list[Sample], n: int, rng: random.Random) -> list[Sample]:
    """`n` samples from `pool`: whole copies of the pool while n exceeds it, then a sample without replacement."""
    if not pool or n <= 0:
        return []
    out: list[Sample] = []
    while n - len(out) >= len(pool):
        out.extend(pool)
    out.extend(rng.sample(pool, n - len(out)))
    return out


DOCUMENT_PROMPT = "What does the document \"{doc}\" say?"
"""The user turn of a document-text sample; the chunk is the assistant turn, and every token is trained."""


def document_samples(chunks: list[dict[str, Any]]) -> list[Sample]:
    """Knowledge documents' own text as training samples, one per `chunks.jsonl` row, trained on every token."""
    out = []
    for c in chunks:
        doc = Path(str(c.get("doc", "document"))).name
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": DOCUMENT_PROMPT.format(doc=doc)},
                    {"role": "assistant", "content": str(c["text"])}]
        meta = {"leaf": c["leaf"], "leaf_type": "knowledge", "branch": "knowledge", "task": "document",
                "chunk_id": c.get("chunk_id"), "doc_sha256": c.get("doc_sha256"), "doc": c.get("doc")}
        out.append(Sample(f"doc-{c.get('chunk_id') or hash_obj(c)[:16]}", messages, meta, unmask=True))
    return out


def document_copies(chunks: int, qa: int, document_style: int, ratio: float) -> int:
    """Document-text samples a leaf's knowledge phase gets: enough for `ratio` document-style samples (the
    copies plus `document_style` generated ones) per Q&A sample, and every one of `chunks` at least once."""
    return max(chunks, round(ratio * qa) - document_style)


def document_view(documents: list[Sample], phase: list[Sample], ratio: float, seed: int) -> list[Sample]:
    """The document-text samples added to a knowledge phase holding `phase`, leaf by leaf (pure and seeded)."""
    by_leaf: dict[str, list[Sample]] = {}
    for d in documents:
        by_leaf.setdefault(str(d.metadata.get("leaf")), []).append(d)
    rng = random.Random(hash_obj([seed, "documents"]))
    out: list[Sample] = []
    for leaf, chunks in sorted(by_leaf.items()):
        mine = [s for s in phase if s.metadata.get("leaf") == leaf and group_of(s) == "knowledge"]
        qa = sum(1 for s in mine if not s.unmask)
        n = document_copies(len(chunks), qa, len(mine) - qa, ratio)
        out.extend(draw(chunks, n, rng))
    return _tagged(out, "document")


def _extra_amount(extra: ExtraDataset, own: int, available: int) -> int:
    if extra.count is not None:
        return extra.count
    if extra.fraction is not None:
        return round(extra.fraction * own)
    return available


def build_phases(samples: list[Sample], config: MixConfig,
                 extras: list[tuple[ExtraDataset, list[Sample]]] | None = None,
                 documents: list[Sample] | None = None) -> tuple[list[Phase], list[dict[str, str]]]:
    """Split samples into phases (pure and seeded); `documents` (see `document_samples`) join the knowledge
    phase. Returns (non-empty phases in order, skipped phases with reasons)."""
    extras = extras or []
    documents = documents or []
    groups: dict[str, list[Sample]] = {"knowledge": [], "foundational": [], "compositional": []}
    for s in samples:
        groups[group_of(s)].append(s)
    rng = random.Random(config.seed)

    if config.strategy == "stacked":
        own = _tagged(groups["knowledge"] + groups["foundational"] + groups["compositional"], "own")
        own += document_view(documents, own, config.document_ratio, config.seed)
        kind = "skills" if groups["compositional"] else "knowledge"
        plan: list[tuple[str, str, list[Sample], list[Sample]]] = [("stacked", kind, own, [])]
    else:
        short = [s for s in groups["knowledge"] if answer_words(s) <= config.short_response_words]
        long = [s for s in groups["knowledge"] if answer_words(s) > config.short_response_words]
        k1 = _tagged(short, "own")
        k1 += document_view(documents, k1, config.document_ratio, config.seed)
        k2 = _tagged(long + groups["foundational"], "own")
        rep2 = _tagged(draw(k1, round(config.knowledge_2_replay * len(k1)), rng), "replay")
        pool = k1 + k2
        rep3 = _tagged(draw(pool, round(config.skills_replay * len(pool)), rng), "replay")
        plan = [
            ("knowledge-1", "knowledge", k1, []),
            ("knowledge-2", "knowledge", k2, rep2),
            ("skills", "skills", _tagged(groups["compositional"], "own"), rep3),
        ]

    phases: list[Phase] = []
    skipped: list[dict[str, str]] = []
    for name, kind, own, replay in plan:
        added: list[Sample] = []
        for extra, rows in extras:
            if extra.phase == name or config.strategy == "stacked":
                n = _extra_amount(extra, len(own), len(rows))
                added.extend(_tagged(draw(rows, n, rng), f"extra:{Path(extra.path).name}"))
        if not own and not added:
            reason = "no samples of its own" + (" (replay alone is not trained)" if replay else "")
            skipped.append({"name": name, "reason": reason})
            continue
        data = own + replay + added
        random.Random(hash_obj([config.seed, name])).shuffle(data)
        counts = {"own": len(own), "replay": len(replay), "extra": len(added)}
        if docs := sum(1 for s in own if s.metadata.get("mix") == "document"):
            counts = {"own": len(own) - docs, "document": docs, "replay": len(replay), "extra": len(added)}
        phases.append(Phase(name, kind, data, counts))
    return phases, skipped


def _sample_error(path: Path, line: int, field: str, message: str) -> InputError:
    return InputError(message, location=Location(str(path), line, None, field),
                      hint='each line must be {"messages": [{"role": "user"|"assistant"|"system", "content": "..."}, ...]}')


def read_samples(path: Path, *, require_id: bool = True) -> list[Sample]:
    """Read and check a samples/messages JSONL file; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    out: list[Sample] = []
    for i, rec in enumerate(read_jsonl(path), start=1):
        if not isinstance(rec, dict):
            raise _sample_error(path, i, "", "a line is not a JSON object")
        msgs = rec.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise _sample_error(path, i, "messages", "missing or empty `messages` list")
        for j, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or \
                    m.get("role") not in ("system", "user", "assistant"):
                raise _sample_error(path, i, f"messages[{j}]",
                                    "each message needs `role` (system, user or assistant) and string `content`")
        if not any(m["role"] == "assistant" for m in msgs):
            raise _sample_error(path, i, "messages", "no assistant message: nothing to train on")
        sid = rec.get("id")
        if sid is None:
            if require_id:
                raise _sample_error(path, i, "id", "missing `id`")
            sid = f"{path.stem}-{i}"
        meta = rec.get("metadata") or {}
        if not isinstance(meta, dict):
            raise _sample_error(path, i, "metadata", "`metadata` must be an object")
        out.append(Sample(str(sid), [dict(m) for m in msgs], dict(meta), bool(rec.get("unmask", False))))
    return out


def held_out_groups(manifest: dict[str, Any] | None) -> set[str]:
    """The source groups (`chunk:ID`) a generate manifest's split holds out for test and checkpoint selection."""
    leaves = (manifest or {}).get("leaves") or {}
    return {g for leaf in leaves.values() if isinstance(leaf, dict)
            for part in ("test", "selection") for g in (leaf.get("split") or {}).get(part) or []}


def trainable_chunks(chunks: list[dict[str, Any]], held_out: set[str]) -> list[dict[str, Any]]:
    """The chunks whose text may be trained on: not those whose generated items are held out (their split
    promises that no training sample shares their chunk)."""
    return [c for c in chunks if f"chunk:{c.get('chunk_id')}" not in held_out]


def read_chunks(generate_dir: Path) -> list[dict[str, Any]]:
    """The document chunks of a generate folder (`chunks.jsonl`); none when it has no such file."""
    path = Path(generate_dir) / "chunks.jsonl"
    if not path.is_file():
        return []
    rows = []
    for i, row in enumerate(read_jsonl(path), start=1):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row.get("leaf"):
            raise InputError("a chunk needs `leaf` and string `text`", location=Location(str(path), i, None, "text"),
                             hint="chunks.jsonl is written by `graft generate`: regenerate the folder")
        rows.append(row)
    return rows


def _check_extras(config: MixConfig) -> None:
    for k, extra in enumerate(config.extra):
        where = Location("<recipe>", None, None, f"mix.extra[{k}]")
        if config.strategy == "phased" and extra.phase == "stacked":
            raise ConfigError("phase `stacked` exists only with mix.strategy: stacked", location=where,
                              hint="set phase to knowledge-1, knowledge-2 or skills")
        if not Path(extra.path).is_file():
            raise ConfigError(f"extra dataset not found: {extra.path}", location=where,
                              hint="give the path of a messages JSONL file (relative to the working directory)")


def run_mix(generate_dir: Path, out: Path, config: MixConfig) -> Path:
    """Write one `<phase>.jsonl` per phase and `manifest.json` (written last) into `out`; returns `out`.

    A rerun with the same inputs and config returns at once."""
    generate_dir, out = Path(generate_dir), Path(out)
    train_file = generate_dir / "train.jsonl"
    if not train_file.is_file():
        raise InputError(f"{generate_dir} has no train.jsonl",
                         hint="pass the output folder of `graft generate` (or a folder holding train.jsonl)")
    _check_extras(config)
    chunks_file = generate_dir / "chunks.jsonl"
    input_hash = hash_obj({
        "train": hash_file(train_file),
        "chunks": hash_file(chunks_file) if chunks_file.is_file() else None,
        "config": config.model_dump(mode="json"),
        "extra": [hash_file(Path(e.path)) for e in config.extra],
    })
    done = read_manifest(out)
    if done is not None and done.get("input_hash") == input_hash:
        log.info("mix: %s is up to date", out)
        return out

    samples = read_samples(train_file)
    if not samples:
        raise InputError(f"{train_file} holds no samples", hint="generate data first: `graft generate`")
    extras = [(e, read_samples(Path(e.path), require_id=False)) for e in config.extra]
    chunks = trainable_chunks(read_chunks(generate_dir), held_out_groups(read_manifest(generate_dir)))
    phases, skipped = build_phases(samples, config, extras, document_samples(chunks))
    if not phases:
        raise InputError(f"no phase has data in {train_file}", hint="check the generated data's metadata `branch`")
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    entries: list[dict[str, Any]] = []
    for p in phases:
        write_jsonl(out / f"{p.name}.jsonl", [s.to_json() for s in p.samples])
        entries.append({"name": p.name, "kind": p.kind, "file": f"{p.name}.jsonl", "samples": len(p.samples),
                        "counts": p.counts})
    for s in skipped:
        log.warning("mix: phase %s skipped: %s", s["name"], s["reason"])
    write_manifest(out, {
        "stage": "mix",
        "input_hash": input_hash,
        "strategy": config.strategy,
        "source": str(generate_dir),
        "config": config.model_dump(mode="json"),
        "phases": entries,
        "skipped": skipped,
    })
    return out


def read_mix(mix_dir: Path) -> list[dict[str, Any]]:
    """The phases of a finished mix directory, in training order."""
    manifest = read_manifest(mix_dir)
    if manifest is None or "phases" not in manifest:
        raise InputError(f"{mix_dir} is not a finished mix directory (no manifest.json with phases)",
                         hint="run `graft mix GENERATE_DIR --out DIR` first, or pass a generate directory to `graft train`")
    return list(manifest["phases"])
