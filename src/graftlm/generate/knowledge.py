"""Knowledge: for each chunk of a leaf's documents, grounded Q&A pairs (with one or more of the leaf's
seed contexts and their Q&A as examples, rotated over chunks so cost is linear in chunks), kept when the
judge finds them faithful, relevant and answerable without the chunk; plus auxiliary tasks per chunk
(detailed summary, extractive summary, atomic facts) trained with the document in the prompt."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from graftlm.generate.freeform import merge
from graftlm.generate.parse import parse_facts, parse_knowledge_check, parse_qa_pairs, parse_summary
from graftlm.generate.pipeline import (
    PRIORITY,
    AuxPayload,
    Context,
    KnowledgePayload,
    Unit,
    UnitResult,
    failed,
    make_sample,
)
from graftlm.generate.questions import question_key
from graftlm.taxonomy.model import QA
from graftlm.templates import render

AUX_INSTRUCTIONS = {
    "detailed_summary": "Summarize the following document in detail.",
    "extractive_summary": "Write an extractive summary of the following document.",
    "atomic_facts": "List the atomic facts stated in the following document.",
}
"""The training prompt of each auxiliary task (the document follows it)."""

AUX_PARSERS = {"detailed_summary": parse_summary, "extractive_summary": parse_summary, "atomic_facts": parse_facts}


def rotate_examples(n_seeds: int, chunk_index: int, k: int) -> list[int]:
    """Seed indices shown with chunk `chunk_index`: k consecutive seeds, rotating over chunks."""
    if n_seeds == 0:
        return []
    k = min(k, n_seeds)
    return [(chunk_index * k + j) % n_seeds for j in range(k)]


async def run_knowledge_unit(ctx: Context, unit: Unit, p: KnowledgePayload) -> UnitResult:
    """One chunk of a knowledge leaf's documents."""
    chunk = p.chunk
    res = UnitResult(unit.unit_id, unit.leaf.name)
    k = min(ctx.config.qa_per_call, p.n_pairs)
    n = math.ceil(p.n_pairs / k)
    reply = await ctx.teacher.chat(
        render("knowledge_qa", domain=unit.leaf.domain, outline=unit.leaf.document_outline,
               examples=p.examples, chunk=chunk.text, k=k),
        ctx.sampled(n), PRIORITY["knowledge_qa"])
    if why := failed(reply):
        res.generated += 1
        res.reject("knowledge_qa", why, chunk_id=chunk.chunk_id)
        return res
    pairs: list[QA] = []
    for text in reply.texts:
        parsed = parse_qa_pairs(text)
        res.generated += len(parsed.items) + len(parsed.rejects)
        res.reject_parse("knowledge_qa", parsed.rejects, chunk_id=chunk.chunk_id, request_hash=reply.request_hash)
        for pair in parsed.items:
            if any(question_key(pair.question) == question_key(q.question) for q in pairs):
                res.reject("knowledge_qa", "repeated", pair.question, chunk_id=chunk.chunk_id)
            else:
                pairs.append(pair)
    meta = {"seed": [ex.seed for ex in p.examples], "chunk_id": chunk.chunk_id,
            "doc_sha256": chunk.doc_sha256, "doc": chunk.doc}
    parts = await asyncio.gather(*(check_pair(ctx, unit, pair, chunk.text, reply.request_hash, meta)
                                   for pair in pairs))
    merge(res, list(parts))
    return res


async def check_pair(ctx: Context, unit: Unit, pair: QA, chunk_text: str, qa_hash: str, meta: dict[str, Any],
                     *, task: str = "qa", unmask: bool = False) -> UnitResult:
    """The knowledge judge's check of a Q&A pair (or of a passage answering `pair.question`) against its chunk,
    when `judge_knowledge` is on; the result holds the sample (`task`, with `meta`) or the reject."""
    res = UnitResult(unit.unit_id, unit.leaf.name)
    hashes = [qa_hash]
    scores: dict[str, Any] = {}
    if ctx.config.judge_knowledge:
        reply = await ctx.judge.chat(render("check_knowledge_pair", chunk=chunk_text, question=pair.question,
                                            answer=pair.answer), ctx.judging(), PRIORITY["judge_knowledge"])
        hashes.append(reply.request_hash)
        if why := failed(reply):
            res.reject("judge_knowledge", why, pair.question, answer=pair.answer, chunk_id=meta["chunk_id"])
            return res
        parsed = parse_knowledge_check(reply.texts[0])
        if not parsed.items:
            res.reject_parse("judge_knowledge", parsed.rejects, question=pair.question, chunk_id=meta["chunk_id"])
            return res
        check = parsed.items[0]
        if not check.passed:
            failing = next(name for name, ok in check.checks.items() if not ok)
            res.reject("judge_knowledge", f"not_{failing}", pair.question, answer=pair.answer,
                       explanation=check.explanation, chunk_id=meta["chunk_id"])
            return res
        scores = {**check.checks, "explanation": check.explanation}
    res.candidates.append(make_sample(unit.leaf, pair.question, pair.answer, task=task, unmask=unmask,
                                      teacher=ctx.teacher_id, judge=ctx.judge_id, request_hashes=hashes,
                                      scores=scores, question=pair.question, **meta))
    if task == "qa":
        ctx.on_kept(unit.leaf.name)
    return res


async def run_aux_unit(ctx: Context, unit: Unit, p: AuxPayload) -> UnitResult:
    """One auxiliary task of one chunk."""
    chunk, task = p.chunk, p.task
    res = UnitResult(unit.unit_id, unit.leaf.name)
    res.generated = 1
    reply = await ctx.teacher.chat(render(f"aux_{task}", chunk=chunk.text), ctx.answering(), PRIORITY["aux"])
    if why := failed(reply):
        res.reject("aux", why, chunk_id=chunk.chunk_id, task=task)
        return res
    parsed = AUX_PARSERS[task](reply.texts[0])
    if not parsed.items:
        for r in parsed.rejects[:1]:
            res.reject("aux", r.reason, r.text, chunk_id=chunk.chunk_id, task=task)
        return res
    body = "\n".join(f"- {f}" for f in parsed.items) if task == "atomic_facts" else parsed.items[0]
    user = f"{AUX_INSTRUCTIONS[task]}\n\n{chunk.text}"
    res.candidates.append(make_sample(unit.leaf, user, body, task=task, unmask=True, teacher=ctx.teacher_id,
                                      request_hashes=[reply.request_hash], scores={}, chunk_id=chunk.chunk_id,
                                      doc_sha256=chunk.doc_sha256, doc=chunk.doc))
    return res
