"""Checkpoint selection during training: a fast score of one checkpoint on a fixed held-out subset.

`make_scorer(data_dir, recipe)` returns `score(checkpoint_dir, phase_kind) -> float` (higher is better).
Knowledge phases: the checkpoint answers a seeded subset of held-out knowledge questions, scored by token
F1 (cheap on a CPU, no judge). The skills phase: it answers held-out skill questions and the judge rates
them 1..10. `eval.selection_metric` overrides the choice; `eval.selection_items` sets the subset size.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

from graftlm.artifacts import hash_obj
from graftlm.config import Recipe
from graftlm.evaluate.answers import ask, gather_limited, open_teacher
from graftlm.evaluate.judge import JUDGE_STOP, close_rating
from graftlm.evaluate.metrics import token_f1
from graftlm.evaluate.qa import answer_messages, is_knowledge, judge_request, parse_judgment
from graftlm.evaluate.run import load_items, model_teacher_config
from graftlm.records import EvalItem
from graftlm.teacher.base import SamplingOptions

log = logging.getLogger(__name__)

Scorer = Callable[[Path, str], float]
"""(checkpoint folder, phase kind "knowledge" | "skills") -> score, higher is better."""


def make_scorer(data_dir: Path, recipe: Recipe) -> Scorer:
    """A scorer over a fixed, seeded subset of `data_dir/eval.jsonl` (read now, so a missing file fails
    before training starts)."""
    cfg = recipe.eval
    items = load_items(Path(data_dir))
    knowledge = _subset([it for it in items if is_knowledge(it)], cfg.selection_items, cfg.seed)
    skills = _subset([it for it in items if not is_knowledge(it)], cfg.selection_items, cfg.seed)

    def score(checkpoint: Path, phase_kind: str) -> float:
        chosen = skills if (phase_kind == "skills" and skills) or not knowledge else knowledge
        metric = cfg.selection_metric
        if metric == "auto":
            metric = "judge" if chosen is skills and cfg.use_judge else "f1"
        value = asyncio.run(_score(str(checkpoint), chosen, metric, recipe))
        log.info("checkpoint %s (%s phase): %s score %.4f on %d items", checkpoint, phase_kind, metric, value,
                 len(chosen))
        return value

    return score


def _subset(items: list[EvalItem], n: int, seed: int) -> list[EvalItem]:
    """At most `n` items spread over leaves: a per-leaf seeded order, then round-robin over the leaves."""
    by_leaf: dict[str, list[EvalItem]] = {}
    for it in sorted(items, key=lambda it: (it.leaf, _rank(it, seed))):
        by_leaf.setdefault(it.leaf, []).append(it)
    out: list[EvalItem] = []
    depth = 0
    while len(out) < n and any(depth < len(v) for v in by_leaf.values()):
        out.extend(v[depth] for v in by_leaf.values() if depth < len(v))
        depth += 1
    return out[:n]


def _rank(item: EvalItem, seed: int) -> str:
    return hash_obj([seed, item.id])


async def _score(spec: str, items: list[EvalItem], metric: str, recipe: Recipe) -> float:
    """Mean token F1 (0..1) or mean judge rating (1..10) of the checkpoint's answers. Judgments that cannot
    be parsed are left out; if none can be parsed the F1 on the judge's scale (1 + 9 F1) stands in."""
    if not items:
        return 0.0
    cfg = recipe.eval
    opts = SamplingOptions(temperature=0.0, max_tokens=cfg.max_new_tokens, seed=cfg.seed)
    teacher = open_teacher(model_teacher_config(spec, recipe), None)
    try:
        answers = await gather_limited([partial(ask, teacher, answer_messages(it), opts) for it in items],
                                       recipe.eval.max_in_flight, "selection answers")
    finally:
        await teacher.aclose()
    f1 = sum(token_f1(a, it.answer) for a, it in zip(answers, items, strict=True)) / len(items)
    if metric == "f1":
        return f1
    judge_cfg = recipe.judge_or_teacher
    judge = open_teacher(judge_cfg, None)
    jopts = SamplingOptions(temperature=0.0, max_tokens=cfg.judge_max_tokens, seed=cfg.seed, stop=JUDGE_STOP)
    try:
        texts = await gather_limited([partial(ask, judge, judge_request(it, a), jopts)
                                      for it, a in zip(items, answers, strict=True)],
                                     judge_cfg.max_in_flight, "selection judging")
    finally:
        await judge.aclose()
    scores = [j.score for it, t in zip(items, texts, strict=True)
              if (j := parse_judgment(it, close_rating(t))).score is not None]
    if not scores:
        log.warning("the judge's ratings of %s could not be parsed; using token F1 on the 1..10 scale", spec)
        return 1 + 9 * f1
    return sum(scores) / len(scores)
