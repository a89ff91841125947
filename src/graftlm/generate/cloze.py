"""Cloze questions: a fact's own sentence turned into questions, one per thing it states, with no teacher.

Each number, date, month, quoted term or name of a fact sentence is an answer span; the question is the
sentence with that span replaced by a question phrase ("The island covers how many square kilometres and
is shaped like a crescent?"), and its answer is the whole sentence. A sentence that opens with a pronoun
("It runs for 64 kilometres ...") is asked with the sentence before it in front, so the question says what
"it" is. Names that the leaf's facts mostly share (the document's own subject, say "Vescary") are not
asked for: "what" for the subject of every sentence teaches nothing. A sentence that names nothing is
asked once as a whole: "X is Y." as "What is X?", else from its first prepositional phrase on.

These are echo questions, not fluent ones: their value is that every fact gets a question aimed at each of
its parts, correct by construction, for a teacher too small to write them (measured in docs/knowledge.md).
All functions here are pure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
                "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million")
VAGUE = ("everything", "nothing", "something", "all", "each", "most", "some")
"""Subjects "What is ...?" cannot ask about ("Everything in this document is made up.")."""
PRONOUNS = ("it", "its", "they", "their", "there", "this", "these", "he", "she", "his", "her")
STARTERS = frozenset(("the", "a", "an", "in", "on", "at", "by", "for", "from", "to", "of", "with", "about", "today",
                      "most", "one", "each", "every", "this", "that", "these", "those", "after", "before", "during",
                      "since", "when", "while"))
"""Capitalised first words of a sentence that are not part of a name after them ("The Silt River")."""
JOINERS = ("of", "de", "la", "von", "van", "der")
"""Lower-case words that may sit inside a name ("Charter of Anselm")."""

_MONTH = "|".join(MONTHS)
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SPANS = (
    # kind, pattern (group "s" is the span replaced), question phrase
    ("date", re.compile(rf"\b(?:on\s+)?(?P<s>\d{{1,2}}\s+(?:{_MONTH})\s+\d{{3,4}})\b"), "on what date"),
    ("year", re.compile(r"\b(?:in\s+)?the\s+year\s+(?P<s>\d{3,4})\b"), None),
    ("year", re.compile(r"\b(?P<p>in|since|from|until|by|of)\s+(?P<s>1\d{3}|20\d{2})\b(?!\s+(?:[a-z]+s|percent)\b)", re.I),
     None),
    ("day", re.compile(rf"\b(?:on\s+)?(?P<s>\d{{1,2}}\s+(?:{_MONTH}))\b"), "on what day"),
    ("month", re.compile(rf"\b(?P<p>in|from|every|until|to|of)\s+(?P<s>{_MONTH})\b(?!\s+\d)"), None),
    ("number", re.compile(rf"(?<![\w,.])(?P<s>{_NUM}|(?:{'|'.join(NUMBER_WORDS)}))(?=\s+[a-z])", re.I), "how many"),
    ("quoted", re.compile(r"\"(?P<s>[^\"\n]{1,40})\""), "what"),
)
_NAME = re.compile(rf"(?:(?<=\s)|^)(?P<s>[A-Z][\w'-]*(?:\s+(?:(?:{'|'.join(JOINERS)})\s+)?[A-Z][\w'-]*)*)")
_TAIL = re.compile(r"(?<=\w )(?:because of|of|for|with|by|from|at|about|into|around|on)\s+(?P<s>\S)", re.I)
"""The first prepositional phrase after a word (not opening the sentence): the part a sentence with no number,
date or name is asked for ("Its water looks brown because of what?")."""
_COPULA = re.compile(r"^(?P<subj>[^,;:]{3,80}?)\s+(?P<v>is|are|was|were)\s+", re.I)
_MARKUP = re.compile(r"`|\||\]\(|\{\{|<[a-z/]")
_ARTICLE = re.compile(r"\b(?:the|a|an)\s+$", re.I)


@dataclass(frozen=True)
class Span:
    """An answer span of a sentence: characters [start, end) and the phrase that asks for it."""

    start: int
    end: int
    kind: str
    ask: str


def _year_phrase(prep: str | None) -> str:
    return f"{prep} what year" if prep else "what year"


def answer_spans(sentence: str, skip_names: Iterable[str] = ()) -> list[Span]:
    """The spans of `sentence` a question can ask for, in order: numbers, dates and quoted terms before names
    (a fact's figures are what a model most often gets wrong); no two overlap. Names in `skip_names` (and
    the sentence's first word, which is capitalised anyway) are not spans. A sentence with none of these is
    asked once as a whole (`_fallback`)."""
    found: list[Span] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s.start or a >= s.end for s in found)

    for kind, pattern, phrase in _SPANS:
        for m in pattern.finditer(sentence):
            a, b = m.span("s")
            if not free(a, b):
                continue
            if kind == "year":
                a, phrase_here = m.start(), _year_phrase((m.groupdict().get("p") or "").lower() or None)
                if "the year" in m.group(0):
                    phrase_here = "in what year" if m.group(0).lower().startswith("in") else "what year"
            elif kind == "month":
                a, phrase_here = m.start(), f"{m.group('p')} which month"
            elif kind in ("date", "day"):
                a, phrase_here = m.start(), phrase or ""
            else:
                phrase_here = phrase or ""
            if kind == "quoted":
                a, b = m.span()
            found.append(Span(a, b, kind, phrase_here))
    skip = {s.lower() for s in skip_names}
    for m in _NAME.finditer(sentence):
        a, b = m.span("s")
        name = m.group("s")
        if a == 0 and " " not in name:
            continue  # the capitalised first word of the sentence
        first, _, rest = name.partition(" ")
        if a == 0 and first.lower() in STARTERS:
            name, a = rest, len(first) + 1
        if name.lower() in skip or name in MONTHS:
            continue
        if free(a, b):
            found.append(Span(a, b, "name", "what"))
    return found or _fallback(sentence)  # names were found last, so they already come last


def _fallback(sentence: str) -> list[Span]:
    """The one question of a sentence that names nothing: "X is Y." asked as "What is X?", else the rest of
    the sentence from its first prepositional phrase on ("Its water looks brown because of what?")."""
    end = len(sentence.rstrip().rstrip(".!?;:"))
    m = _COPULA.match(sentence)
    words = m.group("subj").lower().split() if m else []
    if m and not opens_with_pronoun(sentence) and len(words) <= 6 and words[0] not in VAGUE \
            and not set(words) & {"who", "which", "that"}:
        subj = m.group("subj")
        first, _, rest = subj.partition(" ")
        subj = f"{first.lower()} {rest}".strip() if first.lower() in STARTERS else subj
        return [Span(0, end, "subject", f"what {m.group('v').lower()} {subj}")]
    tail = _TAIL.search(sentence)
    return [Span(tail.start("s"), end, "tail", "what")] if tail else []


def cloze(sentence: str, span: Span) -> str:
    """`sentence` asked for `span`: the span (and an article before a name) replaced by its question phrase,
    the final full stop turned into a question mark."""
    head, tail = sentence[:span.start], sentence[span.end:]
    if span.kind == "name":
        head = _ARTICLE.sub("", head)
    text = f"{head}{span.ask}{tail}".strip()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"[.!;:,]*$", "", text) + "?"
    return text[0].upper() + text[1:] if not head.strip() else text  # "What ..." when the span opened it


def opens_with_pronoun(sentence: str) -> bool:
    first = re.match(r"\W*(\w+)", sentence)
    return first is not None and first.group(1).lower() in PRONOUNS


def shared_names(sentences: list[str], share: float = 0.3) -> set[str]:
    """Capitalised words that more than `share` of the sentences use (not as their first word): the subject
    the whole leaf is about, which a cloze question should not ask for."""
    counts: Counter[str] = Counter()
    for s in sentences:
        counts.update({w for w in re.findall(r"(?<=\s)[A-Z][a-z]+", s)})
    return {w for w, c in counts.items() if len(sentences) > 2 and c > share * len(sentences)}


def cloze_questions(sentence: str, before: str | None, k: int, skip_names: Iterable[str] = ()) -> list[str]:
    """Up to `k` cloze questions about `sentence`, each asking for a different span; `before` (the sentence
    before it in the chunk, if any) leads a question whose sentence opens with a pronoun. None for a sentence
    with markup (code, a table row, a link)."""
    if _MARKUP.search(sentence):
        return []  # code, tables and links are not prose to ask about in place
    spans = answer_spans(sentence, skip_names)[:k]
    lead = f"{before.strip()} " if before and opens_with_pronoun(sentence) else ""
    return [f"{lead}{cloze(sentence, s)}" for s in spans]


def topic_names(topic: str) -> set[str]:
    """The capitalised words of a leaf's topic ("The Isle of Vescary" -> {"Isle", "Vescary"}): single-word names
    a cloze question should not ask for, since nearly every fact of the leaf names them."""
    return {w for w in re.findall(r"[A-Z][\w'-]*", topic) if w.lower() not in STARTERS}
