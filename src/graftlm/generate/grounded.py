"""Grounded skills: new contexts from each seed context, questions answerable only from each context,
then the judge/answer/rate stages of freeform skills with the context. The training prompt is the
context followed by the question."""

from __future__ import annotations

import asyncio

from graftlm.generate.freeform import collect_questions, merge, pair_stages
from graftlm.generate.parse import parse_context
from graftlm.generate.pipeline import PRIORITY, Context, GroundedPayload, Unit, UnitResult, failed
from graftlm.generate.templates import render


async def run_grounded_unit(ctx: Context, unit: Unit, p: GroundedPayload) -> UnitResult:
    """One seed of a grounded skill leaf."""
    res = UnitResult(unit.unit_id, unit.leaf.name)
    task = unit.leaf.task_description
    reply = await ctx.teacher.chat(
        render("grounded_contexts", task=task, seed_context=p.context),
        ctx.sampled(p.n_contexts, ctx.config.context_temperature), PRIORITY["contexts"])
    if why := failed(reply):
        res.generated += 1
        res.reject("contexts", why)
        return res
    contexts: list[str] = []
    for text in reply.texts:
        parsed = parse_context(text)
        res.generated += len(parsed.rejects)  # a lost context is a lost candidate
        res.reject_parse("contexts", parsed.rejects, request_hash=reply.request_hash)
        contexts.extend(c for c in parsed.items if c not in contexts)
    parts = await asyncio.gather(*(
        _one_context(ctx, unit, p, ctx_text, i, reply.request_hash) for i, ctx_text in enumerate(contexts)))
    merge(res, list(parts))
    res.generated += sum(part.generated for part in parts)
    return res


async def _one_context(ctx: Context, unit: Unit, p: GroundedPayload, context: str, index: int,
                       context_hash: str) -> UnitResult:
    res = UnitResult(unit.unit_id, unit.leaf.name)
    k = ctx.config.questions_per_context
    reply = await ctx.teacher.chat(
        render("grounded_questions", task=unit.leaf.task_description, seed_question=p.question,
               context=context, k=k),
        ctx.sampled(1), PRIORITY["questions"])
    if why := failed(reply):
        res.generated += 1
        res.reject("questions", why, context=context)
        return res
    questions = collect_questions(res, reply.texts, reply.request_hash)
    parts = await asyncio.gather(*(
        pair_stages(ctx, unit, q, seed_question=p.question, seed_answer=p.answer, context=context,
                    hashes=(context_hash, reply.request_hash),
                    metadata={"seed": p.seed, "context_index": index})
        for q in questions))
    merge(res, list(parts))
    return res
