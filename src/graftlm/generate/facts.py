"""Facts first (`generate.facts`): for each chunk of a knowledge leaf, its atomic facts, found by the teacher
(`teacher`: the `knowledge_facts` prompt, one self-contained fact a line) or taken as the chunk's sentences
(`sentences`: no teacher call), each located in the chunk; then, in the same unit, the views of every fact
and of the chunk (`graftlm.generate.views`). One unit per chunk keeps cost linear in chunks, and a rerun
resumes chunk by chunk: the unit's facts are journaled with its samples (`UnitResult.facts`).

At finish, `graftlm.generate.coverage.dedup_facts` marks facts that repeat a fact of an earlier chunk (`duplicate_of`) and gives each
the split part of its chunk; `finish` writes them to `facts.jsonl`.
"""

from __future__ import annotations

import re
from typing import Any

from graftlm.artifacts import hash_obj
from graftlm.generate.chunking import sentence_text, split_sentences
from graftlm.generate.parse import parse_fact_list
from graftlm.generate.pipeline import PRIORITY, ChunkText, Context, FactsPayload, Unit, UnitResult, failed
from graftlm.generate.views import run_views
from graftlm.templates import render

_WORD = re.compile(r"\w+")
MIN_SPAN_OVERLAP = 0.3
"""Share of a fact's words a sentence must hold to be taken as the fact's span."""


def locate_span(fact: str, text: str, sentences: list[tuple[int, int]]) -> list[int] | None:
    """The span of the chunk sentence sharing most of the fact's words (ties: the first), or None when
    none holds `MIN_SPAN_OVERLAP` of them."""
    words = {w.lower() for w in _WORD.findall(fact)}
    if not words:
        return None
    best: tuple[float, tuple[int, int]] | None = None
    for span in sentences:
        share = len(words & {w.lower() for w in _WORD.findall(text[span[0]:span[1]])}) / len(words)
        if best is None or share > best[0]:
            best = (share, span)
    if best is None or best[0] < MIN_SPAN_OVERLAP:
        return None
    return list(best[1])


def fact_record(leaf: str, chunk: ChunkText, text: str, span: list[int] | None, source: str) -> dict[str, Any]:
    """One fact as `facts.jsonl` holds it (docs/contracts.md); `duplicate_of` and `part` are set at finish."""
    return {"fact_id": hash_obj([leaf, chunk.chunk_id, text])[:16], "leaf": leaf, "chunk_id": chunk.chunk_id,
            "doc": chunk.doc, "span": span, "text": text, "source": source}


async def _teacher_facts(ctx: Context, unit: Unit, chunk: ChunkText, res: UnitResult) -> list[str]:
    reply = await ctx.teacher.chat(render("knowledge_facts", domain=unit.leaf.domain, chunk=chunk.text),
                                   ctx.answering(), PRIORITY["facts"])
    if why := failed(reply):
        res.generated += 1
        res.reject("facts", why, chunk_id=chunk.chunk_id)
        return []
    parsed = parse_fact_list(reply.texts[0])
    res.generated += len(parsed.rejects)  # a fact is no sample; a rejected line is a candidate lost
    res.reject_parse("facts", parsed.rejects, chunk_id=chunk.chunk_id, request_hash=reply.request_hash)
    return parsed.items


async def run_facts_unit(ctx: Context, unit: Unit, p: FactsPayload) -> UnitResult:
    """One chunk in facts mode: its facts, then every view of them and of the chunk."""
    chunk = p.chunk
    res = UnitResult(unit.unit_id, unit.leaf.name)
    sentences = split_sentences(chunk.text)
    found: list[tuple[str, list[int] | None]]
    if p.source == "sentences":
        found = [(sentence_text(chunk.text, s), list(s)) for s in sentences]
        source = "sentence"
    else:
        found = [(f, locate_span(f, chunk.text, sentences)) for f in await _teacher_facts(ctx, unit, chunk, res)]
        source = "teacher"
    res.facts = [fact_record(unit.leaf.name, chunk, text, span, source) for text, span in found]
    await run_views(ctx, unit, chunk, res.facts, [sentence_text(chunk.text, s) for s in sentences], res)
    return res
