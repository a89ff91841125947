"""The one judging layer, used by generation (question checks, pair ratings) and evaluation (knowledge
verdicts, skill and MT-Bench ratings).

A judge answers in one of two ways:
- **by probabilities**: when the judge returns token log-probabilities (a local model, or a server such as
  vLLM or llama.cpp that fills `logprobs`/`top_logprobs`), it is asked for the verdict alone and the
  probabilities of the allowed verdicts (yes/no, 1..3, 1..10) at the answer position are compared, so a
  verdict is never unparsable;
- **in free text**: otherwise the judge explains, then writes its verdict, parsed by the pure functions
  below. A judgment that cannot be parsed is an error, counted as the judge error rate, never a zero.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from graftlm.teacher.base import Message, SamplingOptions, Teacher
from graftlm.templates import render

JUDGE_SYSTEM = "You are a strict, impartial judge of answers written by AI assistants."
"""System message of every evaluation judge request."""

JUDGE_STOP = ("]]",)
"""Judges stop right after the `[[rating]]` they were asked for: small judges otherwise ramble on to the token
limit, which is most of the cost of judging on a CPU."""

JudgeMode = Literal["auto", "probabilities", "text"]


def judge_messages(template: str, *, direct: bool = False, **values: Any) -> list[Message]:
    """An evaluation judge request; `direct` asks for the verdict alone (judging by probabilities)."""
    return render(template, system=JUDGE_SYSTEM, direct=direct, **values)


# -- scales ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scale:
    """The allowed verdicts of a judge prompt and the value of each."""

    name: str
    choices: tuple[str, ...]
    values: tuple[float, ...]


YES_NO = Scale("yes/no", ("yes", "no"), (1.0, 0.0))
RATING_3 = Scale("1..3", ("1", "2", "3"), (1.0, 2.0, 3.0))
RATING_10 = Scale("1..10", tuple(str(i) for i in range(1, 11)), tuple(float(i) for i in range(1, 11)))


@dataclass(frozen=True)
class ChoiceVerdict:
    """A verdict read from probabilities: the normalised probability of each allowed verdict, the most
    likely one and the expected value."""

    probs: dict[str, float]
    best: str
    expected: float

    def describe(self) -> str:
        top = sorted(self.probs.items(), key=lambda kv: -kv[1])[:3]
        return "by probabilities: " + ", ".join(f"P({k})={v:.2f}" for k, v in top)


def read_choices(logprobs: dict[str, float], scale: Scale) -> ChoiceVerdict | None:
    """Normalise the log-probabilities of a scale's verdicts; None when none of them has any probability."""
    finite = [lp for c in scale.choices if math.isfinite(lp := logprobs.get(c, -math.inf))]
    if not finite:
        return None
    top = max(finite)
    weights = {c: math.exp(logprobs[c] - top) if math.isfinite(logprobs.get(c, -math.inf)) else 0.0
               for c in scale.choices}
    total = sum(weights.values())
    probs = {c: w / total for c, w in weights.items()}
    best = max(scale.choices, key=lambda c: probs[c])
    expected = sum(probs[c] * v for c, v in zip(scale.choices, scale.values, strict=True))
    return ChoiceVerdict(probs, best, expected)


@runtime_checkable
class ProbabilityJudge(Protocol):
    """A teacher that can report the log-probability of each allowed reply (None: it cannot, for example
    a server that returns no logprobs)."""

    model_id: str

    async def choice_logprobs(self, messages: list[Message], choices: tuple[str, ...]) -> dict[str, float] | None: ...


async def judge_by_probabilities(teacher: Teacher, messages: list[Message], scale: Scale) -> ChoiceVerdict | None:
    """The verdict of `teacher` on a `direct` prompt read from probabilities; None when the teacher cannot
    report them or none of the allowed verdicts is among the tokens it reports."""
    if not isinstance(teacher, ProbabilityJudge):
        return None
    logprobs = await teacher.choice_logprobs(messages, scale.choices)
    return None if logprobs is None else read_choices(logprobs, scale)


# -- judgments of evaluation ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Judgment:
    """A judgment: `score` on the 1..10 scale, `correct` for knowledge verdicts, `error` when the judge's
    text could not be parsed (then the item does not count towards the mean), `method` how it was read."""

    text: str
    score: float | None
    correct: bool | None = None
    error: str | None = None
    method: str = "text"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def knowledge_from_choices(v: ChoiceVerdict) -> Judgment:
    """A knowledge judgment from P(yes): correct when P(yes) > 0.5, rating 1 + 9 P(yes)."""
    p = v.probs["yes"]
    return Judgment(v.describe(), 1 + 9 * p, p > 0.5, None, "probabilities")


def rating_from_choices(v: ChoiceVerdict) -> Judgment:
    """A 1..10 judgment: the expected rating under the judge's probabilities."""
    return Judgment(v.describe(), v.expected, None, None, "probabilities")


@dataclass(frozen=True)
class JudgeRequest:
    """What a judge is asked: a judge template, the kind of verdict, and the template's values."""

    template: str
    kind: Literal["knowledge", "rating"]
    values: dict[str, Any]

    def messages(self, *, direct: bool = False) -> list[Message]:
        return judge_messages(self.template, direct=direct, **self.values)

    def key(self) -> str:
        """Identical requests (base and trained gave the same answer) are judged once."""
        return json.dumps([self.template, self.kind, self.values], sort_keys=True)


async def judge(teacher: Teacher, request: JudgeRequest, options: SamplingOptions,
                mode: JudgeMode = "auto") -> Judgment:
    """One evaluation judgment: by probabilities when `mode` allows and the teacher reports them, else the
    free-text judgment (`options`) parsed. `mode="probabilities"` never falls back to text."""
    knowledge = request.kind == "knowledge"
    if mode != "text":
        verdict = await judge_by_probabilities(teacher, request.messages(direct=True),
                                               YES_NO if knowledge else RATING_10)
        if verdict is not None:
            return knowledge_from_choices(verdict) if knowledge else rating_from_choices(verdict)
        if mode == "probabilities":
            return Judgment("", None, None, f"{teacher.model_id} reported no probabilities for the verdicts",
                            "probabilities")
    result = await teacher.chat(request.messages(), options)
    text = close_rating(result.texts[0] if result.completions else "")
    return parse_knowledge_judgment(text) if knowledge else parse_score_judgment(text)


# -- free-text parsers -----------------------------------------------------------------------------------------

def close_rating(text: str) -> str:
    """Put back the `]]` that the stop string cut off a judgment ending in `[[7`."""
    return text + "]]" if re.search(r"\[\[\s*\d{1,2}(?:\.\d+)?\s*$", text) else text


_NUM = r"(\d{1,2}(?:\.\d+)?)"
_JSON_OBJ = re.compile(r"\{[^{}]*\}")
_RATING_KEYS = ("rating", "score", "grade")


def _rating_patterns(hi: float) -> list[re.Pattern[str]]:
    top = f"{hi:g}"
    return [
        re.compile(r"\[\[\s*" + _NUM + r"\s*(?:/\s*" + top + r"\s*)?\]\]"),
        re.compile(r"(?:rating|score|grade|mark)\s*(?:is|of|:|=|-)?\s*[*_\"'\[(]*\s*" + _NUM
                   + r"(?:\s*(?:/|out\s+of)\s*" + top + r")?(?![\d.]*\s*%)", re.IGNORECASE),
        re.compile(_NUM + r"\s*(?:/|out\s+of)\s*" + top + r"\b", re.IGNORECASE),
        re.compile(r"\[\s*" + _NUM + r"\s*\]"),
    ]


def _in_range(value: float, lo: float, hi: float) -> float | None:
    return value if lo <= value <= hi else None


def _json_objects(text: str) -> list[dict[str, Any]]:
    out = []
    for m in _JSON_OBJ.finditer(text):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append({str(k).lower(): v for k, v in obj.items()})
    return out


def find_rating(text: str, lo: float = 1, hi: float = 10) -> tuple[float | None, int] | None:
    """(rating or None when out of lo..hi, where it starts) of the rating a judge wrote, or None when there
    is none. Accepts `[[7]]`, JSON `{"rating": 7}`, `Rating: 7`, `Score: 7/10`, `7/10`, `7 out of 10`, `[7]`
    and a bare number; the explanation comes first, so within one format the last occurrence wins."""
    if not text or not text.strip():
        return None
    for obj in reversed(_json_objects(text)):
        for key in _RATING_KEYS:
            value = obj.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return _in_range(float(value), lo, hi), 0
            if isinstance(value, str) and re.fullmatch(r"\s*" + _NUM + r"\s*(?:/\s*\d+)?\s*", value):
                return _in_range(float(re.findall(_NUM, value)[0]), lo, hi), 0
    out_of_range: tuple[float | None, int] | None = None
    for i, pattern in enumerate(_rating_patterns(hi)):
        matches = list(pattern.finditer(text))
        if matches and i == 0:  # the asked-for `[[n]]` format is final, even when out of range
            return _in_range(float(matches[-1].group(1)), lo, hi), matches[-1].start()
        for m in reversed(matches):  # looser formats: the last in-range mention
            if _in_range(float(m.group(1)), lo, hi) is not None:
                return float(m.group(1)), m.start()
        if matches and out_of_range is None:
            out_of_range = (None, matches[-1].start())
    bare = text.strip().strip("*.").strip()
    if re.fullmatch(_NUM, bare):
        return _in_range(float(bare), lo, hi), 0
    return out_of_range


def parse_rating(text: str, lo: float = 1, hi: float = 10) -> float | None:
    """The rating in a judge's text within lo..hi, or None (values outside are rejected, not clipped)."""
    found = find_rating(text, lo, hi)
    return None if found is None else found[0]


_NEGATIVE = {"incorrect", "wrong", "false", "no", "not correct", "0"}
_POSITIVE = {"correct", "right", "true", "yes", "1"}
_VERDICT_WORDS = r"not\s+correct|incorrect|correct|wrong|right|false|true|yes|no"
_VERDICT = re.compile(r"verdict\s*(?:is|:|=|-)?\s*[*_\"'\[]*\s*(" + _VERDICT_WORDS + r")\b", re.IGNORECASE)
_SHORT_VERDICT = re.compile(r"(?:verdict|label|score|answer)\s*(?:is|:|=|-)?\s*[*_\"'\[(]*\s*(" + _VERDICT_WORDS
                            + r"|[01])\b", re.IGNORECASE)


def find_verdict(text: str, *, short: bool = False) -> tuple[bool, int] | None:
    """(verdict, where it starts) in a judge's text, or None. Accepts `Verdict: correct`, JSON
    `{"correct": true}` or `{"verdict": "incorrect"}`, and a last line that is only CORRECT / INCORRECT.
    `short` judgments (a yes/no question answered `Verdict: 1|0`) also accept a final bare 0/1 and a
    leading yes/no."""
    if not text or not text.strip():
        return None
    for obj in reversed(_json_objects(text)):
        if isinstance(obj.get("correct"), bool):
            return bool(obj["correct"]), 0
        v = obj.get("verdict")
        if isinstance(v, str) and v.strip().lower() in _POSITIVE | _NEGATIVE:
            return v.strip().lower() in _POSITIVE, 0
    matches = list((_SHORT_VERDICT if short else _VERDICT).finditer(text))
    if matches:
        word = re.sub(r"\s+", " ", matches[-1].group(1).lower())
        return word in _POSITIVE, matches[-1].start()
    for line in reversed([ln.strip(" *_.:#\t").lower() for ln in text.splitlines() if ln.strip()]):
        if line in ("correct", "incorrect", "not correct"):
            return line == "correct", len(text)
        break
    if short:
        tail = re.search(r"\b([01])\W*$", text)
        if tail:
            return tail.group(1) == "1", tail.start()
        head = re.match(r"^\W*(yes|no)\b", text, re.I)
        if head:
            return head.group(1).lower() == "yes", len(text)
    return None


def parse_verdict(text: str) -> bool | None:
    """True (correct), False (incorrect) or None: the verdict of a knowledge judgment."""
    found = find_verdict(text)
    return None if found is None else found[0]


def parse_knowledge_judgment(text: str) -> Judgment:
    """A knowledge judgment needs a verdict and a 1..10 rating; either one alone is kept, with the missing
    part named in `error` (accuracy and mean rating count their own errors)."""
    score = parse_rating(text)
    correct = parse_verdict(text)
    missing = [name for name, v in (("verdict", correct), ("rating", score)) if v is None]
    return Judgment(text, score, correct, f"no {' and no '.join(missing)} found" if missing else None)


def parse_score_judgment(text: str) -> Judgment:
    """A 1..10 rating judgment (skills, MT-Bench)."""
    score = parse_rating(text)
    return Judgment(text, score, None, None if score is not None else "no 1..10 rating found")
