"""How far a judge can be trusted, measured before it is used.

The labelled set is made from the taxonomy's own texts (the knowledge leaves' document chunks, else the
held-out references and passages): a sentence with a fact in it is the reference, and the judge sees two
answers, the sentence itself (correct) and a copy with that number or name swapped for another of the
same kind from the same leaf (incorrect). The share of these it gets right is its accuracy; below
`eval.judge_min_accuracy` the judge is reported unreliable and its verdicts do not decide "learned".
Texts without a blankable fact give no labelled set: the accuracy is then reported as not measured.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import Any

from graftlm.config.evaluate import EvalConfig
from graftlm.evaluate.answers import gather_limited
from graftlm.evaluate.mc import sentences, spans
from graftlm.judging import JUDGE_STOP, JudgeRequest, Judgment, judge
from graftlm.records import EvalItem
from graftlm.teacher.base import SamplingOptions, Teacher


@dataclass(frozen=True)
class LabelledAnswer:
    request: JudgeRequest
    correct: bool


def check_texts(chunks: dict[str, list[dict[str, Any]]], items: list[EvalItem]) -> dict[str, list[str]]:
    """The texts the labelled set is made from, by leaf: document chunks, else references and passages."""
    texts = {leaf: [str(c.get("text", "")) for c in rows] for leaf, rows in chunks.items() if rows}
    if not texts:
        for it in items:
            texts.setdefault(it.leaf, []).extend(x for x in (it.context, it.answer) if x)
    return texts


def labelled_set(texts: dict[str, list[str]], n: int, seed: int) -> list[LabelledAnswer]:
    """Up to `n` labelled answers (half correct, half with a swapped fact) from texts by leaf."""
    rng = random.Random(f"{seed}:judge-check")
    cases: list[tuple[str, str, str]] = []  # (question, reference, swapped)
    for leaf in sorted(texts):
        found = [(s, kind, a, b) for text in texts[leaf] for s in sentences(text) for kind, a, b in spans(s)]
        pool: dict[str, set[str]] = {}
        for s, kind, a, b in found:
            pool.setdefault(kind, set()).add(s[a:b])
        seen: set[str] = set()
        for s, kind, a, b in found:
            others = sorted(x for x in pool[kind] if x.lower() != s[a:b].lower() and x not in s)
            if s in seen or not others:
                continue
            seen.add(s)
            question = f"Complete the statement from the documents: {s[:a]}____{s[b:]}"
            cases.append((question, s, f"{s[:a]}{rng.choice(others)}{s[b:]}"))
    rng.shuffle(cases)
    out = []
    for i, (question, reference, swapped) in enumerate(cases[: max(1, n // 2)] if n else []):
        right = i % 2 == 0  # alternate which one comes first, both are asked
        for answer, label in ((reference, True), (swapped, False)) if right else ((swapped, False), (reference, True)):
            values = {"question": question, "reference": reference, "answer": answer}
            out.append(LabelledAnswer(JudgeRequest("judge_knowledge_answer", "knowledge", values), label))
    return out[:n]


async def measure(teacher: Teacher, cases: list[LabelledAnswer], cfg: EvalConfig, limit: int) -> dict[str, Any]:
    """The judge's accuracy on `cases` (a failed judgment counts as wrong), and whether it is reliable."""
    opts = SamplingOptions(temperature=0.0, max_tokens=cfg.judge_max_tokens, seed=cfg.seed, stop=JUDGE_STOP)
    judged: list[Judgment] = await gather_limited(
        [partial(judge, teacher, c.request, opts, cfg.judge_mode) for c in cases], limit, "judge check")
    right = sum(1 for c, j in zip(cases, judged, strict=True) if j.correct is c.correct)
    failed = sum(1 for j in judged if j.correct is None)
    accuracy = right / len(cases) if cases else None
    return {"items": len(cases), "right": right, "failed": failed, "accuracy": accuracy,
            "threshold": cfg.judge_min_accuracy, "methods": sorted({j.method for j in judged}),
            "reliable": None if accuracy is None else accuracy >= cfg.judge_min_accuracy,
            "description": "share of labelled answers judged right: true sentences of the taxonomy's own texts "
                           "and copies with a swapped number or name"}
