"""Pure parsers of teacher answers: one function per prompt in `prompts/`, each returning the records it
found and the rejects with a reason.

Small teachers ignore formats, so every parser tries the requested structure first (labelled lines such
as `Question:`), then tolerant fallbacks (numbered or bulleted lists, JSON, a single plain answer). Text is
only ever split at line boundaries or labels, never at an arbitrary character such as `?`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from graftlm.generate.chunking import MIN_FACT_WORDS
from graftlm.judging import find_rating, find_verdict
from graftlm.taxonomy.model import QA

T = TypeVar("T")


@dataclass(frozen=True)
class Reject:
    """A candidate (or a whole answer) that a parser could not use, and why."""

    reason: str
    text: str = ""


@dataclass
class Parsed(Generic[T]):
    items: list[T] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    value: int
    explanation: str = ""


@dataclass(frozen=True)
class Rating:
    score: int
    explanation: str = ""


@dataclass(frozen=True)
class KnowledgeCheck:
    checks: dict[str, bool]
    explanation: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


MIN_QUESTION_WORDS = 3
MAX_QUESTION_WORDS = 250
MIN_CONTEXT_WORDS = 15
MIN_SUMMARY_WORDS = 8

_LIST_MARK = r"(?:\d{1,3}[.)]|[-*•])"
_LABEL_RE = re.compile(
    rf"^\s*(?:{_LIST_MARK}\s*)?[*_#]*\s*(?P<label>[A-Za-z][A-Za-z ]{{0,20}}?)\s*(?:\d{{1,3}})?\s*[*_]*\s*[:：]\s*[*_]*\s*(?P<rest>.*)$"
)
_ITEM_RE = re.compile(rf"^\s*{_LIST_MARK}\s+(?P<rest>\S.*)$")


def _words(text: str) -> int:
    return len(text.split())


def _clean(text: str) -> str:
    """Strip whitespace, wrapping quotes and Markdown emphasis around a whole item."""
    text = text.strip()
    for _ in range(2):
        text = re.sub(r"^\*\*(.*)\*\*$", r"\1", text, flags=re.S).strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
            text = text[1:-1].strip()
    return text


def _label(line: str, labels: tuple[str, ...]) -> tuple[str, str] | None:
    """(label, rest) when `line` starts with one of `labels` (case-insensitive) followed by a colon."""
    m = _LABEL_RE.match(line)
    if not m:
        return None
    label = m.group("label").strip().lower()
    for want in labels:
        if label == want.lower():
            return want, m.group("rest")
    return None


def _labelled_blocks(text: str, labels: tuple[str, ...], stop: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Blocks that start at a labelled line and run until the next label, a stop label, or a blank
    line (unless the block so far ends with a colon, which introduces more content)."""
    blocks: list[tuple[str, list[str]]] = []
    current: tuple[str, list[str]] | None = None
    for line in text.splitlines():
        hit = _label(line, labels + stop)
        if hit is not None:
            current = None
            if hit[0] in labels:
                current = (hit[0], [hit[1]])
                blocks.append(current)
            continue
        if current is None:
            continue
        if not line.strip():
            body = "\n".join(current[1]).strip()
            if body and not body.endswith(":"):
                current = None
            else:
                current[1].append("")
            continue
        current[1].append(line.rstrip())
    return [(label, "\n".join(lines).strip()) for label, lines in blocks]


def _list_items(text: str) -> list[str]:
    """Items of a numbered or bulleted list, with their continuation lines."""
    items: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        m = _ITEM_RE.match(line)
        if m:
            current = [m.group("rest")]
            items.append(current)
        elif current is not None and line.strip() and line[:1].isspace():
            current.append(line.strip())
        else:
            current = None
    return [" ".join(i).strip() for i in items]


def _json_value(text: str) -> object | None:
    body = text.strip()
    fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", body, flags=re.S)
    if fence:
        body = fence.group(1)
    if not body or body[0] not in "[{":
        return None
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return None


def _check_question(q: str, out: Parsed[str]) -> None:
    inline = _INLINE_ANSWER.match(q)  # a teacher that answered its own question on the same line
    q = _clean(inline.group(1) if inline else q)
    if _words(q) < MIN_QUESTION_WORDS:
        out.rejects.append(Reject("too_short", q))
    elif _words(q) > MAX_QUESTION_WORDS:
        out.rejects.append(Reject("too_long", q))
    elif q in out.items:
        out.rejects.append(Reject("repeated_in_answer", q))
    else:
        out.items.append(q)


def parse_questions(text: str) -> Parsed[str]:
    """`freeform_questions` and `grounded_questions`: one or more questions."""
    out: Parsed[str] = Parsed()
    text = (text or "").strip()
    if not text:
        out.rejects.append(Reject("empty"))
        return out
    blocks = _labelled_blocks(text, ("Question", "Q", "New question", "Instruction"), stop=("Answer", "A"))
    candidates = [body for _, body in blocks if body]
    if not candidates:
        candidates = _list_items(text)
    if not candidates:
        value = _json_value(text)
        if isinstance(value, dict):
            value = value.get("questions", [value])
        if isinstance(value, list):
            for v in value:
                if isinstance(v, str):
                    candidates.append(v)
                elif isinstance(v, dict) and isinstance(v.get("question"), str):
                    candidates.append(v["question"])
    if not candidates and "\n\n" not in text and _words(text) <= 80:
        candidates = [text]
    if not candidates:
        out.rejects.append(Reject("no_question_found", text))
    for c in candidates:
        _check_question(c, out)
    return out


def _after_label(text: str, labels: tuple[str, ...]) -> str:
    """The text after the first line labelled with one of `labels` (the whole text when none is)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        hit = _label(line, labels)
        if hit is not None:
            return "\n".join([hit[1], *lines[i + 1 :]]).strip()
    return text.strip()


def _before_label(text: str, labels: tuple[str, ...]) -> str:
    """The text up to the first line labelled with one of `labels` (a teacher running on)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if i > 0 and _label(line, labels) is not None:
            return "\n".join(lines[:i]).strip()
    return text.strip()


def parse_context(text: str) -> Parsed[str]:
    """`grounded_contexts`: one new passage."""
    out: Parsed[str] = Parsed()
    body = _before_label(_after_label(text or "", ("Passage", "New passage", "Context")), ("Question", "Passage"))
    body = _clean(body)
    if not body:
        out.rejects.append(Reject("empty"))
    elif _words(body) < MIN_CONTEXT_WORDS:
        out.rejects.append(Reject("too_short", body))
    else:
        out.items.append(body)
    return out


def parse_verdict(text: str) -> Parsed[Verdict]:
    """`judge_question`: explanation, then `Verdict: 0|1` (read by the judging layer's verdict parser, which
    also takes a final bare 0/1 or a leading yes/no)."""
    out: Parsed[Verdict] = Parsed()
    text = (text or "").strip()
    if not text:
        out.rejects.append(Reject("empty"))
        return out
    found = find_verdict(text, short=True)
    if found is None:
        out.rejects.append(Reject("unparsable", text))
    else:
        out.items.append(Verdict(int(found[0]), text[: found[1]].strip()))
    return out


def parse_answer(text: str, question: str = "") -> Parsed[str]:
    """`answer`: the answer text, without an `Answer:` label or a next question the teacher ran on to."""
    out: Parsed[str] = Parsed()
    body = _before_label(_after_label(text or "", ("Answer", "A", "Response")), ("Question", "Q", "Example question"))
    body = body.strip()
    if not body:
        out.rejects.append(Reject("empty"))
    elif question and _norm(body) == _norm(question):
        out.rejects.append(Reject("echoes_question", body))
    else:
        out.items.append(body)
    return out


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def parse_rating(text: str) -> Parsed[Rating]:
    """`rate_pair`: explanation, then `Rating: 1..3` (read by the judging layer's rating parser)."""
    out: Parsed[Rating] = Parsed()
    text = (text or "").strip()
    if not text:
        out.rejects.append(Reject("empty"))
        return out
    found = find_rating(text, 1, 3)
    if found is None:
        out.rejects.append(Reject("unparsable", text))
    elif found[0] is None or found[0] != int(found[0]):
        out.rejects.append(Reject("out_of_range", text))
    else:
        explanation = _after_label(text[: found[1]], ("Explanation",)).strip()
        out.items.append(Rating(int(found[0]), explanation))
    return out


_INLINE_ANSWER = re.compile(r"^(.*?\S)\s+[*_]*Answer\s*[:：]\s*[*_]*\s*(\S.*)$", re.S)


def parse_qa_pairs(text: str) -> Parsed[QA]:
    """`knowledge_qa`: `Question:` / `Answer:` pairs (also `Q:`/`A:`), or a JSON list of objects."""
    out: Parsed[QA] = Parsed()
    text = (text or "").strip()
    if not text:
        out.rejects.append(Reject("empty"))
        return out
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for label, body in _labelled_blocks(text, ("Question", "Q", "Answer", "A")):
        if label in ("Question", "Q"):
            if pending is not None:
                out.rejects.append(Reject("missing_answer", pending))
            pending = body
            inline = _INLINE_ANSWER.match(body)  # "Question: ...? Answer: ..." on one line
            if inline:
                pairs.append((inline.group(1), inline.group(2)))
                pending = None
        elif pending is not None:
            pairs.append((pending, body))
            pending = None
    if pending is not None:
        out.rejects.append(Reject("missing_answer", pending))
    if not pairs and not out.rejects:
        value = _json_value(text)
        if isinstance(value, dict):
            value = value.get("pairs", value.get("questions_and_answers", [value]))
        if isinstance(value, list):
            for v in value:
                if isinstance(v, dict) and isinstance(v.get("question"), str) and isinstance(v.get("answer"), str):
                    pairs.append((v["question"], v["answer"]))
    if not pairs and not out.rejects:
        out.rejects.append(Reject("no_pair_found", text))
    seen: set[str] = set()
    for q, a in pairs:
        q, a = _clean(q), _clean(a)
        if _words(q) < MIN_QUESTION_WORDS:
            out.rejects.append(Reject("too_short", q))
        elif not a:
            out.rejects.append(Reject("missing_answer", q))
        elif _norm(q) in seen:
            out.rejects.append(Reject("repeated_in_answer", q))
        else:
            seen.add(_norm(q))
            out.items.append(QA(q, a))
    return out


KNOWLEDGE_CHECKS = ("faithful", "relevant", "standalone")


def parse_knowledge_check(text: str) -> Parsed[KnowledgeCheck]:
    """`check_knowledge_pair`: `Faithful:`, `Relevant:`, `Standalone:` each yes/no. Checks the teacher left
    out are not counted; a judgment with none of them falls back to a leading yes/no for all."""
    out: Parsed[KnowledgeCheck] = Parsed()
    text = (text or "").strip()
    if not text:
        out.rejects.append(Reject("empty"))
        return out
    checks: dict[str, bool] = {}
    for line in text.splitlines():
        hit = _label(line, tuple(c.capitalize() for c in KNOWLEDGE_CHECKS))
        if hit is None:
            continue
        word = re.match(r"^\W*(yes|no|true|false)\b", hit[1], re.I)
        if word:
            checks[hit[0].lower()] = word.group(1).lower() in ("yes", "true")
    if not checks:
        head = re.match(r"^\W*(yes|no)\b", text, re.I)
        if head:
            checks = dict.fromkeys(KNOWLEDGE_CHECKS, head.group(1).lower() == "yes")
    if not checks:
        out.rejects.append(Reject("unparsable", text))
        return out
    explanation = _before_label(_after_label(text, ("Explanation",)), tuple(c.capitalize() for c in KNOWLEDGE_CHECKS))
    out.items.append(KnowledgeCheck(checks, explanation))
    return out


def parse_summary(text: str) -> Parsed[str]:
    """`aux_detailed_summary` and `aux_extractive_summary`: one text of at least a few words."""
    out: Parsed[str] = Parsed()
    body, problem = _one_text(text, ("Summary", "Extractive summary", "Detailed summary"), MIN_SUMMARY_WORDS)
    if problem:
        out.rejects.append(Reject(problem, body))
    else:
        out.items.append(body)
    return out


def _one_text(text: str, labels: tuple[str, ...], min_words: int) -> tuple[str, str | None]:
    """A single text answer after an optional label, and `empty` or `too_short` when it is not usable."""
    body = _clean(_after_label(text or "", labels))
    if not body:
        return body, "empty"
    return body, "too_short" if _words(body) < min_words else None


def parse_facts(text: str) -> Parsed[str]:
    """`aux_atomic_facts`: one fact a line (bulleted, numbered, or plain lines)."""
    out: Parsed[str] = Parsed()
    body = _after_label(text or "", ("Facts", "Atomic facts"))
    if not body.strip():
        out.rejects.append(Reject("empty"))
        return out
    facts = _list_items(body) or [line.strip() for line in body.splitlines() if line.strip()]
    for f in facts:
        f = _clean(f)
        if _words(f) < 3:
            out.rejects.append(Reject("too_short", f))
        elif f not in out.items:
            out.items.append(f)
    if not out.items and not out.rejects:
        out.rejects.append(Reject("no_fact_found", body))
    return out


# ---------------------------------------------------------------------------------------------------
# Facts first: the facts of a chunk, then the views of each fact (`graftlm.generate.facts`, `.views`)

MAX_FACT_WORDS = 40
MIN_PASSAGE_WORDS = 12
PRONOUNS = frozenset({"it", "its", "they", "their", "them", "he", "his", "she", "her", "this", "these", "those",
                      "that", "there"})
_TRAILING = frozenset({"the", "a", "an", "of", "by", "and", "or", "to", "in", "on", "with", "for", "at", "from"})
_QUESTION_WORDS = frozenset({"what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are",
                             "was", "were", "do", "does", "did", "can", "could", "has", "have", "had", "will",
                             "would", "should", "name", "according", "in", "on", "since", "for"})
_PROMPT_WORDS = frozenset({("faq",), ("q",), ("a",), ("question",), ("answer",), ("key", "points"), ("note",)})


def _lines_or_items(body: str) -> list[str]:
    """A list's items, or the text's non-empty lines when it has no list markers."""
    return _list_items(body) or [line.strip() for line in body.splitlines() if line.strip()]


def _fact_problem(fact: str, last: bool) -> str | None:
    from graftlm.evaluate.facts import entities, is_name

    words = fact.split()
    if len(words) < MIN_FACT_WORDS or fact.endswith((":", "?")) or fact.startswith("#"):
        return "not_a_fact"
    if len(words) > MAX_FACT_WORDS:
        return "too_long"
    if last and (fact.endswith(",") or words[-1].lower() in _TRAILING):
        return "truncated"
    if words[0].lower().strip(",") in PRONOUNS and not any(is_name(e) for e in entities(fact)):
        return "pronoun_only"
    return None


def parse_fact_list(text: str) -> Parsed[str]:
    """`knowledge_facts`: one self-contained fact a line (bulleted, numbered or plain). Rejects: `not_a_fact`
    (a preamble, heading, question or fragment), `too_long`, `truncated` (the reply's last line cut off),
    `pronoun_only` (its subject is a pronoun and it names nothing), `repeated`."""
    out: Parsed[str] = Parsed()
    body = _after_label(text or "", ("Facts", "Atomic facts"))
    if not body.strip():
        out.rejects.append(Reject("empty"))
        return out
    lines = _lines_or_items(body)
    seen: set[str] = set()
    for i, line in enumerate(lines):
        fact = _clean(line)
        problem = _fact_problem(fact, i == len(lines) - 1)
        if problem is None and _norm(fact) in seen:
            problem = "repeated"
        if problem is not None:
            out.rejects.append(Reject(problem, fact))
            continue
        seen.add(_norm(fact))
        out.items.append(fact)
    return out


def _is_question(question: str) -> bool:
    first = (re.findall(r"\w+", question.lower()) or [""])[0]
    return question.rstrip().endswith("?") or first in _QUESTION_WORDS


def _states_fact(question: str, answer: str, fact: str) -> bool:
    """A Q&A pair states a fact when its answer states at least half the fact's key facts not already in the
    question; a yes/no answer may leave them in the question."""
    from graftlm.evaluate.facts import fact_recall

    if re.match(r"^\W*(yes|no)\b", answer, re.I):
        return fact_recall(f"{question} {answer}", fact).score >= 0.5
    return fact_recall(answer, fact, question=question).score >= 0.5


def parse_view_qa(text: str, fact: str) -> Parsed[QA]:
    """`view_qa` and `view_reverse_qa`: `Question:`/`Answer:` pairs about one fact (the rejects of
    `parse_qa_pairs`), each also rejected as `no_question` when the question is not one, or
    `answer_missing_fact` when the pair does not state the fact's key facts (`graftlm.evaluate.facts`)."""
    parsed = parse_qa_pairs(text)
    out: Parsed[QA] = Parsed(rejects=list(parsed.rejects))
    for pair in parsed.items:
        if not _is_question(pair.question):
            out.rejects.append(Reject("no_question", pair.question))
        elif not _states_fact(pair.question, pair.answer, fact):
            out.rejects.append(Reject("answer_missing_fact", f"{pair.question} -> {pair.answer}"))
        else:
            out.items.append(pair)
    return out


def _new_exact(text: str, source: str) -> list[tuple[str, ...]]:
    """Numbers, dates and names `text` states that `source` does not (words of the prompts excepted)."""
    from graftlm.evaluate.facts import entities, mentions

    def stated(e: tuple[str, ...]) -> bool:  # "Vescary and Port Anselm" is stated when both names are
        parts = " ".join(e).replace(" & ", " and ").split(" and ")
        return mentions(source, e) or (len(parts) > 1 and all(mentions(source, p.split()) for p in parts))

    return [e for e in entities(text) if e not in _PROMPT_WORDS and not stated(e)]


def parse_paraphrases(text: str, fact: str) -> Parsed[str]:
    """`view_paraphrase`: restatements of one fact, one a line. Rejects: `empty`, `too_short`, `same_as_fact`
    (the fact's own words), `changes_facts` (a name or number of the fact left out or changed, or one added),
    `repeated`."""
    from graftlm.evaluate.facts import fact_recall

    out: Parsed[str] = Parsed()
    body = _after_label(text or "", ("Restatements", "Restatement", "Paraphrases", "Paraphrase"))
    if not body.strip():
        out.rejects.append(Reject("empty"))
        return out
    seen = {_norm(fact)}
    for line in _lines_or_items(body):
        p = _clean(line)
        if _words(p) < MIN_FACT_WORDS:
            out.rejects.append(Reject("too_short", p))
        elif _norm(p) == _norm(fact):
            out.rejects.append(Reject("same_as_fact", p))
        elif _norm(p) in seen:
            out.rejects.append(Reject("repeated", p))
        elif fact_recall(p, fact).score < 1.0 or _new_exact(p, fact):
            out.rejects.append(Reject("changes_facts", p))
        else:
            seen.add(_norm(p))
            out.items.append(p)
    return out


def parse_passage(text: str, chunk: str, required: tuple[tuple[str, ...], ...] = ()) -> Parsed[str]:
    """`view_relation` and `view_rewrite`: one passage written from a chunk. Rejects: `empty`, `too_short`,
    `missing_entity` (one of the `required` entities, normalised as `graftlm.evaluate.facts.entities` gives
    them, is not named), `not_grounded` (it states a number, date or name the chunk does not)."""
    from graftlm.evaluate.facts import mentions

    out: Parsed[str] = Parsed()
    body, problem = _one_text(text, ("Passage", "Rewrite", "Explanation"), MIN_PASSAGE_WORDS)
    if problem:
        out.rejects.append(Reject(problem, body))
    elif any(not mentions(body, e) for e in required):
        out.rejects.append(Reject("missing_entity", body))
    elif _new_exact(body, chunk):
        out.rejects.append(Reject("not_grounded", body))
    else:
        out.items.append(body)
    return out
