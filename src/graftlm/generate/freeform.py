"""Freeform skills: new questions from each seed (sampled, several completions), a 0/1 judge of each
question, an answer guided by the seed Q/A, a 1..3 rating with the explanation first.

`pair_stages` (judge, answer, rate) is shared with grounded skills, which pass the context.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from graftlm.generate.parse import Rating, Verdict, parse_answer, parse_questions, parse_rating, parse_verdict
from graftlm.generate.pipeline import (
    PRIORITY,
    Context,
    FreeformPayload,
    Unit,
    UnitResult,
    failed,
    make_sample,
)
from graftlm.generate.questions import question_key
from graftlm.judging import RATING_3, YES_NO, ChoiceVerdict, Scale
from graftlm.templates import render


async def _by_probabilities(ctx: Context, template: str, scale: Scale, priority: int,
                            values: dict[str, Any]) -> ChoiceVerdict | None:
    """The judge's verdict read from probabilities (`generate.judge_mode`), or None to judge in text."""
    if ctx.config.judge_mode == "text":
        return None
    return await ctx.judge.choose(render(template, direct=True, **values), scale, priority)


async def pair_stages(ctx: Context, unit: Unit, question: str, *, seed_question: str, seed_answer: str,
                      context: str | None = None, hashes: tuple[str, ...] = (),
                      metadata: dict[str, Any] | None = None) -> UnitResult:
    """Judge one question, answer it, rate the pair; the result holds the sample or the reject."""
    res = UnitResult(unit.unit_id, unit.leaf.name)
    task = unit.leaf.task_description
    request_hashes = list(hashes)
    scores: dict[str, Any] = {}
    if ctx.config.judge_questions:
        values: dict[str, Any] = {"task": task, "question": question, "context": context}
        by_probability = await _by_probabilities(ctx, "judge_question", YES_NO, PRIORITY["judge_question"], values)
        if by_probability is not None:
            verdict = Verdict(int(by_probability.best == "yes"), by_probability.describe())
        else:
            reply = await ctx.judge.chat(render("judge_question", **values), ctx.judging(), PRIORITY["judge_question"])
            request_hashes.append(reply.request_hash)
            if why := failed(reply):
                res.reject("judge_question", why, question)
                return res
            verdicts = parse_verdict(reply.texts[0])
            if not verdicts.items:
                res.reject_parse("judge_question", verdicts.rejects, question=question)
                return res
            verdict = verdicts.items[0]
        if verdict.value != 1:
            res.reject("judge_question", "judged_0", question, explanation=verdict.explanation)
            return res
        scores["question"] = 1

    reply = await ctx.teacher.chat(render("answer", task=task, seed_question=seed_question, seed_answer=seed_answer,
                                          context=context, question=question), ctx.answering(), PRIORITY["answer"])
    request_hashes.append(reply.request_hash)
    if why := failed(reply):
        res.reject("answer", why, question)
        return res
    answers = parse_answer(reply.texts[0], question)
    if not answers.items:
        res.reject_parse("answer", answers.rejects, question=question)
        return res
    answer = answers.items[0]

    if ctx.config.rate_pairs:
        pair: dict[str, Any] = {"task": task, "question": question, "answer": answer, "context": context}
        by_probability = await _by_probabilities(ctx, "rate_pair", RATING_3, PRIORITY["rate"], pair)
        if by_probability is not None:
            rating = Rating(int(by_probability.best), by_probability.describe())
        else:
            reply = await ctx.judge.chat(render("rate_pair", **pair), ctx.judging(), PRIORITY["rate"])
            request_hashes.append(reply.request_hash)
            if why := failed(reply):
                res.reject("rate", why, question, answer=answer)
                return res
            ratings = parse_rating(reply.texts[0])
            if not ratings.items:
                res.reject_parse("rate", ratings.rejects, question=question, answer=answer)
                return res
            rating = ratings.items[0]
        if rating.score < ctx.config.rating_threshold:
            res.reject("rate", f"rating_{rating.score}", question, answer=answer, explanation=rating.explanation)
            return res
        scores.update(rating=rating.score, rating_explanation=rating.explanation)

    user = question if context is None else f"{context}\n\n{question}"
    res.candidates.append(make_sample(
        unit.leaf, user, answer, task="skill", teacher=ctx.teacher_id, judge=ctx.judge_id,
        request_hashes=request_hashes, scores=scores, question=question, context=context, **(metadata or {}),
    ))
    ctx.on_kept(unit.leaf.name)
    return res


def merge(into: UnitResult, parts: list[UnitResult]) -> None:
    """Append sub-results in their fixed order (deterministic output whatever finished first)."""
    for p in parts:
        into.candidates.extend(p.candidates)
        into.rejects.extend(p.rejects)


async def run_freeform_unit(ctx: Context, unit: Unit, p: FreeformPayload) -> UnitResult:
    """One seed of a freeform skill leaf."""
    res = UnitResult(unit.unit_id, unit.leaf.name)
    k = min(ctx.config.questions_per_call, p.n_questions)
    n = math.ceil(p.n_questions / k)
    reply = await ctx.teacher.chat(
        render("freeform_questions", task=unit.leaf.task_description, seed_question=p.question, k=k),
        ctx.sampled(n), PRIORITY["questions"])
    if why := failed(reply):
        res.generated += 1
        res.reject("questions", why)
        return res
    questions = collect_questions(res, reply.texts, reply.request_hash)
    parts = await asyncio.gather(*(
        pair_stages(ctx, unit, q, seed_question=p.question, seed_answer=p.answer,
                    hashes=(reply.request_hash,), metadata={"seed": p.seed})
        for q in questions))
    merge(res, list(parts))
    return res


def collect_questions(res: UnitResult, texts: list[str], request_hash: str) -> list[str]:
    """Parse every completion; count candidates; drop exact repeats across completions."""
    questions: list[str] = []
    seen: set[str] = set()
    for text in texts:
        parsed = parse_questions(text)
        res.generated += len(parsed.items) + len(parsed.rejects)
        res.reject_parse("questions", parsed.rejects, request_hash=request_hash)
        for q in parsed.items:
            key = question_key(q)
            if key in seen:
                res.reject("questions", "repeated", q)
            else:
                seen.add(key)
                questions.append(q)
    return questions
