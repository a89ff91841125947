"""Judging with any teacher: prompt templates (`prompts/*.j2`) and robust, pure parsers of judgments.

A judgment that cannot be parsed is an error, counted and reported as the judge error rate; it is never
turned into a zero score.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

PROMPTS = Path(__file__).parent / "prompts"

JUDGE_SYSTEM = "You are a strict, impartial judge of answers written by AI assistants."
"""System message of every judge request."""


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(PROMPTS)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=False, autoescape=False)


def render(template: str, **values: Any) -> str:
    """Render `prompts/<template>.j2`; a missing value raises instead of rendering empty."""
    return _env().get_template(f"{template}.j2").render(**values).strip() + "\n"


def judge_messages(template: str, **values: Any) -> list[dict[str, str]]:
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": render(template, **values)}]


JUDGE_STOP = ("]]",)
"""Judges stop right after the `[[rating]]` they were asked for: small judges otherwise ramble on to the token
limit, which is most of the cost of judging on a CPU."""


def close_rating(text: str) -> str:
    """Put back the `]]` that the stop string cut off a judgment ending in `[[7`."""
    return text + "]]" if re.search(r"\[\[\s*\d{1,2}(?:\.\d+)?\s*$", text) else text


@dataclass(frozen=True)
class Judgment:
    """A parsed judgment: `score` on the 1..10 scale, `correct` for knowledge verdicts, `error` when the
    judge's text could not be parsed (then the item does not count towards the mean)."""

    text: str
    score: float | None
    correct: bool | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_NUM = r"(\d{1,2}(?:\.\d+)?)"
_RATING_PATTERNS = [
    re.compile(r"\[\[\s*" + _NUM + r"\s*(?:/\s*10\s*)?\]\]"),
    re.compile(r"(?:rating|score|grade|mark)\s*(?:is|of|:|=|-)?\s*[*_\"']*\s*" + _NUM
               + r"(?:\s*(?:/|out\s+of)\s*10)?(?![\d.]*\s*%)", re.IGNORECASE),
    re.compile(_NUM + r"\s*(?:/|out\s+of)\s*10\b", re.IGNORECASE),
    re.compile(r"\[\s*" + _NUM + r"\s*\]"),
]
_JSON_OBJ = re.compile(r"\{[^{}]*\}")
_RATING_KEYS = ("rating", "score", "grade")


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


def parse_rating(text: str, lo: float = 1, hi: float = 10) -> float | None:
    """The rating in a judge's text, or None. Accepts `[[7]]`, JSON `{"rating": 7}`, `Rating: 7`, `Score: 7/10`,
    `7/10`, `7 out of 10`, `[7]` and a bare number; the explanation comes first, so within one format the
    last occurrence wins. Values outside lo..hi are rejected, not clipped."""
    if not text or not text.strip():
        return None
    for obj in reversed(_json_objects(text)):
        for key in _RATING_KEYS:
            value = obj.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return _in_range(float(value), lo, hi)
            if isinstance(value, str) and re.fullmatch(r"\s*" + _NUM + r"\s*(?:/\s*10)?\s*", value):
                return _in_range(float(re.findall(_NUM, value)[0]), lo, hi)
    for i, pattern in enumerate(_RATING_PATTERNS):
        matches = pattern.findall(text)
        if matches and i == 0:  # the asked-for `[[n]]` format is final, even when out of range
            return _in_range(float(matches[-1]), lo, hi)
        for m in reversed(matches):  # looser formats: the last in-range mention
            if _in_range(float(m), lo, hi) is not None:
                return float(m)
    bare = text.strip().strip("*.").strip()
    if re.fullmatch(_NUM, bare):
        return _in_range(float(bare), lo, hi)
    return None


_VERDICT = re.compile(r"verdict\s*(?:is|:|=|-)?\s*[*_\"'\[]*\s*(not\s+correct|incorrect|correct|wrong|right|"
                      r"false|true|yes|no)\b", re.IGNORECASE)
_NEGATIVE = {"incorrect", "wrong", "false", "no", "not correct"}
_POSITIVE = {"correct", "right", "true", "yes"}


def parse_verdict(text: str) -> bool | None:
    """True (correct), False (incorrect) or None. Accepts `Verdict: correct`, JSON `{"correct": true}` or
    `{"verdict": "incorrect"}`, and a last line that is only CORRECT / INCORRECT."""
    if not text:
        return None
    for obj in reversed(_json_objects(text)):
        if isinstance(obj.get("correct"), bool):
            return bool(obj["correct"])
        v = obj.get("verdict")
        if isinstance(v, str) and v.strip().lower() in _POSITIVE | _NEGATIVE:
            return v.strip().lower() in _POSITIVE
    matches = _VERDICT.findall(text)
    if matches:
        word = re.sub(r"\s+", " ", matches[-1].lower())
        return word in _POSITIVE
    for line in reversed([ln.strip(" *_.:#\t").lower() for ln in text.splitlines() if ln.strip()]):
        if line in ("correct", "incorrect", "not correct"):
            return line == "correct"
        break
    return None


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
