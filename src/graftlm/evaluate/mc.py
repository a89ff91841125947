"""Multiple-choice cloze questions built from a knowledge leaf's document chunks (MMLU-branch style).

No judge and no teacher: a sentence of the documents has one fact (a number or a name) blanked out; the
distractors are facts of the same kind from elsewhere in the same leaf's documents, so every option is
plausible in form. Each option is scored by the model's log-likelihood of the whole sentence with that
option filled in, per token (length-normalised); the question counts as right when the true fact scores
highest. Questions come from held-out chunks the model was not trained on where the generate split has them;
otherwise they test recall of training text and are labelled so (`source`).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import Any

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_MARKUP = re.compile(r"[#*_`>|]+")
_NUMBER = re.compile(r"(?<![\w.,])\d(?:[\d,]*\d)?(?:\.\d+)?(?![\w])")
_STARTERS = {"The", "This", "That", "These", "It", "Its", "In", "On", "At", "A", "An", "They", "There", "He", "She"}
_MONTHS = {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
_NAME = re.compile(r"(?<![\w])[A-Z][a-z]+(?:[ -][A-Z][a-z]+)*")
MIN_WORDS, MAX_WORDS = 6, 60


@dataclass(frozen=True)
class MCQuestion:
    """One cloze question: `prefix + option + suffix` for each option; `answer` is the right option's index."""

    id: str
    leaf: str
    chunk_id: str
    prefix: str
    suffix: str
    options: tuple[str, ...]
    answer: int
    kind: str
    source: str = "held_out"
    """`held_out` (text the model was not trained on) or `training_text` (recall of trained text)."""

    def filled(self, i: int) -> str:
        return f"{self.prefix}{self.options[i]}{self.suffix}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = list(self.options)
        return d


def sentences(text: str) -> list[str]:
    """Plain sentences of a Markdown-ish text, one line of prose at a time (headings and tables dropped)."""
    out = []
    # PDF text leaves a heading at the end of the line before its section: "... the other. Economy\nTourism is"
    text = re.sub(r"([.!?])[ \t]+[A-Z][\w-]*(?:[ \t]+[A-Z][\w-]*){0,2}[ \t]*\n(?=[A-Z\"'])", r"\1\n", text)
    for para in re.split(r"\n\s*\n", text):
        lines = [ln for ln in para.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", "|", "```"))
                 and not _is_heading(ln)]
        prose = _MARKUP.sub("", " ".join(ln.strip().lstrip("-+ ") for ln in lines))
        prose = re.sub(r"\s+", " ", prose).strip()
        for s in _SENTENCE.split(prose):
            if MIN_WORDS <= len(s.split()) <= MAX_WORDS:
                out.append(s)
    return out


def _is_heading(line: str) -> bool:
    """A short line without closing punctuation (PDF text keeps headings as plain lines)."""
    words = line.split()
    return (len(words) <= 5 and not re.search(r"[.!?:;,]", line)
            and all(w[:1].isupper() or not w[:1].isalpha() for w in words))


def spans(sentence: str) -> list[tuple[str, int, int]]:
    """Blankable facts in a sentence: (kind, start, end), kind `number`, `month` (months and weekdays) or
    `name`. Names at the very start are skipped (they are
    capitalised only because they start the sentence, or are the topic every option would share)."""
    found = [("number", m.start(), m.end()) for m in _NUMBER.finditer(sentence)]
    found += [("month" if m.group(0) in _MONTHS else "name", m.start(), m.end())
              for m in _NAME.finditer(sentence)
              if m.start() > 0 and not any(w in _STARTERS for w in m.group(0).split()[1:])]
    return found


def build_questions(leaf: str, chunks: list[dict[str, Any]], *, limit: int, options: int,
                    seed: int, source: str = "held_out") -> list[MCQuestion]:
    """Up to `limit` cloze questions of one leaf, at most one per sentence, deterministic for a seed."""
    rng = random.Random(f"{seed}:{leaf}")
    candidates: list[tuple[str, str, str, int, int]] = []  # chunk_id, sentence, kind, start, end
    pool: dict[str, set[str]] = {"number": set(), "name": set(), "month": set()}
    for chunk in chunks:
        for sent in sentences(str(chunk.get("text", ""))):
            found = spans(sent)
            for kind, a, b in found:
                pool[kind].add(sent[a:b])
            if found:
                kind, a, b = rng.choice(found)
                candidates.append((str(chunk.get("chunk_id", "")), sent, kind, a, b))
    rng.shuffle(candidates)
    out: list[MCQuestion] = []
    seen: set[str] = set()
    for chunk_id, sent, kind, a, b in candidates:
        if len(out) >= limit:
            break
        if sent in seen:
            continue
        right = sent[a:b]
        others = sorted(x for x in pool[kind] if x.lower() != right.lower() and x not in sent)
        if len(others) < options - 1:
            continue
        seen.add(sent)
        opts = [right, *rng.sample(others, options - 1)]
        rng.shuffle(opts)
        out.append(MCQuestion(id=f"mc-{len(out):03d}", leaf=leaf, chunk_id=chunk_id, prefix=sent[:a],
                              suffix=sent[b:], options=tuple(opts), answer=opts.index(right), kind=kind,
                              source=source))
    return out


def score_questions(model: Any, tokenizer: Any, questions: list[MCQuestion]) -> list[dict[str, Any]]:
    """For each question: log-likelihood per token of every option, the chosen index and whether it is right."""
    from graftlm.evaluate.loglik import sequence_logprobs

    texts = [q.filled(i) for q in questions for i in range(len(q.options))]
    scores = sequence_logprobs(model, tokenizer, texts, per_token=True)
    out, pos = [], 0
    for q in questions:
        s = scores[pos:pos + len(q.options)]
        pos += len(q.options)
        chosen = max(range(len(s)), key=lambda i: s[i])
        out.append({"logprobs": s, "per": "token", "chosen": chosen, "correct": float(chosen == q.answer)})
    return out
