"""Answers of the fake teacher to evaluation's judge prompts (tests, dry runs, `--judge fake`).

The fake judge is deterministic and not random noise: it scores an answer by its token overlap with the
reference (knowledge, skills; a knowledge answer with a number or name the reference lacks is incorrect) or by its length (MT-Bench, which has no reference), and writes its rating
in one of several formats real judges use, so the parsers are exercised. An answer containing
`<<unjudgeable>>` gets a judgment without any rating, to exercise the judge error accounting.
"""

from __future__ import annotations

import hashlib
import json
import re

from graftlm.evaluate.metrics import rouge_l, token_f1
from graftlm.judging import JUDGE_SYSTEM
from graftlm.teacher.base import Message, SamplingOptions

UNJUDGEABLE = "<<unjudgeable>>"

_SECTION = re.compile(r"^\[([^\]\n]+)\]\s*$", re.MULTILINE)


def sections(prompt: str) -> dict[str, str]:
    """`[Heading]` blocks of a judge prompt, by heading (the last block of a repeated heading wins)."""
    out: dict[str, str] = {}
    marks = list(_SECTION.finditer(prompt))
    for m, nxt in zip(marks, [*marks[1:], None], strict=True):
        end = nxt.start() if nxt else len(prompt)
        out[m.group(1).strip()] = prompt[m.end():end].strip()
    return out


def _format(score: int, explanation: str, key: str, verdict: str | None = None) -> str:
    style = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 4
    head = f"Explanation: {explanation}\n" + (f"Verdict: {verdict}\n" if verdict else "")
    if style == 0:
        return head + f"Rating: [[{score}]]"
    if style == 1:
        return head + f"Rating: {score}"
    if style == 2:
        return head + f"I would give this answer {score}/10."
    body: dict[str, object] = {"explanation": explanation, "rating": score}
    if verdict:
        body["verdict"] = verdict
    return json.dumps(body)


def _facts(text: str) -> set[str]:
    """Numbers and capitalised words after the first word: what a swapped fact changes."""
    words = re.findall(r"[\w,.]+", text)
    return {w.strip(".,") for w in words[1:] if w[:1].isdigit() or w[:1].isupper()}


def respond(messages: list[Message], options: SamplingOptions, index: int) -> str | None:
    if not messages or messages[0].get("content") != JUDGE_SYSTEM:
        return None
    prompt = messages[-1].get("content", "")
    parts = sections(prompt)
    answer = next((v for k, v in reversed(parts.items()) if k.startswith("Assistant")), "")
    if UNJUDGEABLE in answer:
        return "Hmm, this is hard to say. The answer has some merit but also some problems."
    if "Reference answer" in parts and "Question" in parts:  # knowledge
        f1 = token_f1(answer, parts["Reference answer"])
        alien = _facts(answer) - _facts(parts["Reference answer"])  # a number or name the reference lacks
        verdict = "correct" if f1 >= 0.5 and not alien else "incorrect"
        f1 = min(f1, 0.4) if alien else f1
        return _format(1 + round(9 * f1), f"token overlap with the reference is {f1:.2f}.", answer, verdict)
    if "Reference response" in parts:  # skill
        rl = rouge_l(answer, parts["Reference response"])
        return _format(1 + round(9 * rl), f"similarity to the reference is {rl:.2f}.", answer)
    if any(k.startswith("User, turn") for k in parts):  # MT-Bench
        words = len(answer.split())
        return _format(min(10, 1 + words // 15), f"the answer has {words} words.", answer)
    return None
