"""Fact recall: does an answer state the key facts of its reference, whatever the wording?

The key facts of a reference are its numbers (with their unit or currency), dates, times, proper nouns and
multi-word names, and quoted terms, or the item's own `keywords` when it has them. Facts the question already
states are not asked for. Both texts are normalised the same way before matching: diacritics and case
dropped, number words read as numbers (`number-parser`), thousands separators removed, units and currencies
mapped to one spelling ("millimetres" = "mm"), dates written as one token. A fact counts as recalled when its
normalised tokens appear in the answer in order; a number with the wrong value is not recalled, however much
of the sentence around it matches. A reference with no extractable key fact is scored by content-word recall
and says so (`basis`).

What this cannot see: a fact stated and then contradicted, a negation ("not 27"), a correct fact in other
units ("1.067 m" for "1,067 mm"), or a name spelled differently. It measures whether the facts are there,
not whether the answer is otherwise right.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Literal

Basis = Literal["keywords", "key facts", "content words"]

# One spelling per unit or currency. Only the synonyms differ between texts: a unit is part of a number fact.
UNITS: dict[str, tuple[str, ...]] = {
    "mm": ("mm", "millimetre", "millimetres", "millimeter", "millimeters"),
    "cm": ("cm", "centimetre", "centimetres", "centimeter", "centimeters"),
    "m": ("m", "metre", "metres", "meter", "meters"),
    "km": ("km", "kilometre", "kilometres", "kilometer", "kilometers"),
    "in": ("inch", "inches"),
    "ft": ("ft", "foot", "feet"),
    "mi": ("mi", "mile", "miles"),
    "mg": ("mg", "milligram", "milligrams", "milligramme", "milligrammes"),
    "g": ("g", "gram", "grams", "gramme", "grammes"),
    "kg": ("kg", "kilogram", "kilograms", "kilogramme", "kilogrammes", "kilo", "kilos"),
    "t": ("tonne", "tonnes", "ton", "tons"),
    "ml": ("ml", "millilitre", "millilitres", "milliliter", "milliliters"),
    "l": ("l", "litre", "litres", "liter", "liters"),
    "%": ("%", "percent", "pct"),
    "s": ("s", "sec", "second", "seconds"),
    "min": ("min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "day": ("day", "days"),
    "week": ("week", "weeks"),
    "month": ("months",),
    "year": ("year", "years", "yr", "yrs"),
    "kmh": ("kmh", "kph"),
    "mph": ("mph",),
    "degc": ("°c", "celsius"),
    "degf": ("°f", "fahrenheit"),
    "kw": ("kw", "kilowatt", "kilowatts"),
    "w": ("w", "watt", "watts"),
    "v": ("v", "volt", "volts"),
    "hz": ("hz", "hertz"),
    "usd": ("$", "usd", "dollar", "dollars"),
    "eur": ("€", "eur", "euro", "euros"),
    "gbp": ("£", "gbp", "pound", "pounds", "sterling"),
    "jpy": ("¥", "jpy", "yen"),
}
_UNIT = {syn: canon for canon, syns in UNITS.items() for syn in syns}
_CURRENCY = {"usd", "eur", "gbp", "jpy"}
_SCALES = {"1000": 1000, "1000000": 10**6, "1000000000": 10**9, "1000000000000": 10**12}
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_MONTH_RE = (r"(?:january|february|march|april|may|june|july|august|september|october|november|december"
             r"|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\b\.?")
_DATE_DMY = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\s*,?\s+(\d{{3,4}})\b", re.I)
_DATE_MDY = re.compile(rf"\b({_MONTH_RE})\s+(\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s+(\d{{3,4}})\b", re.I)
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s?m\b\.?|\b(\d{1,2}):(\d{2})\b", re.I)
_THOUSANDS = re.compile(r"(?<=\d)[,\u202f\u00a0'](?=\d{3}\b)")
_QUOTED = re.compile(r"[\"“”«»]([^\"“”«»\n]{1,80})[\"“”«»]|(?<!\w)'([^'\n]{1,80})'(?!\w)")
_TOKEN = re.compile(r"__[a-z0-9_]+__|\d+(?:\.\d+)?|[%$€£¥]|°[cf]|\w+", re.UNICODE)
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_NAME_JOINERS = {"of", "the", "de", "la", "le", "von", "van", "der", "du", "and", "&", "del", "da"}


@dataclass(frozen=True)
class Token:
    """One word, number, symbol, date or time of a normalised text."""

    text: str
    """Normalised (lower case, no diacritics, units in one spelling)."""
    capital: bool
    """Written with a capital first letter."""
    sentence_start: bool
    """First token of a sentence (after `.`, `!`, `?`, `;`, `:` or at the start)."""


@dataclass(frozen=True)
class FactScore:
    """Share of the reference's key facts found in an answer, and which ones."""

    score: float
    """Share of `facts` in `found`, 0..1."""
    basis: Basis
    facts: tuple[str, ...]
    """Each fact's normalised tokens joined by spaces (`1067 mm`, `lantern council`, `__d1921_05_12__`)."""
    found: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(f for f in self.facts if f not in self.found)


def strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=4096)
def _is_ordinal_word(word: str) -> bool:
    from number_parser import parse_number, parse_ordinal

    return not word.isdigit() and parse_number(word) is None and parse_ordinal(word) is not None


@lru_cache(maxsize=4096)
def _number_words_to_digits(text: str) -> str:
    """Cardinal number words as digits ("twenty-seven" -> "27"). Ordinal words stay words: "first sailed"
    states an order, not a count."""
    from number_parser import parse

    kept: list[str] = []

    def hide(m: re.Match[str]) -> str:
        kept.append(m[0])
        return f"ordinalword{len(kept) - 1}x"

    hidden = re.sub(r"[A-Za-z]+", lambda m: hide(m) if _is_ordinal_word(m[0].lower()) else m[0], text)
    return re.sub(r"ordinalword(\d+)x", lambda m: kept[int(m[1])], str(parse(hidden)))


def _canon_number(text: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    return format(value.normalize(), "f")


def _date_token(year: str, month: int | None, day: str | None) -> str:
    parts = [str(int(year))] + ([f"{month:02d}"] if month else []) + ([f"{int(day):02d}"] if day else [])
    return "__d" + "_".join(parts) + "__"


def _month(name: str) -> int | None:
    return _MONTHS.get(name.lower()[:3])


def _dates_and_times(text: str) -> str:
    """Dates and clock times as single tokens, so "12 March 1998" = "March 12, 1998" = "1998-03-12"."""
    text = _DATE_DMY.sub(lambda m: f" {_date_token(m[3], _month(m[2]), m[1])} ", text)
    text = _DATE_MDY.sub(lambda m: f" {_date_token(m[3], _month(m[1]), m[2])} ", text)
    text = _DATE_ISO.sub(lambda m: f" {_date_token(m[1], int(m[2]), m[3])} ", text)

    def clock(m: re.Match[str]) -> str:
        if m[4] is not None:
            hour, minute = int(m[4]), int(m[5])
        else:
            hour, minute = int(m[1]) % 12 + (12 if m[3].lower() == "p" else 0), int(m[2] or 0)
        return f" __t{hour:02d}_{minute:02d}__ "

    return _TIME.sub(clock, text)


def tokens(text: str) -> list[Token]:
    """Normalised tokens of a text, with the capitalisation and sentence starts fact extraction needs."""
    text = strip_diacritics(unicodedata.normalize("NFKC", text))
    text = _number_words_to_digits(text)
    text = _THOUSANDS.sub("", text)
    text = _dates_and_times(text)
    out: list[Token] = []
    start = True
    for m in re.finditer(rf"{_TOKEN.pattern}|[.!?;:]", text):
        raw = m.group(0)
        if raw in ".!?;:":
            start = True
            continue
        low = raw.lower()
        if _NUMBER.match(low):
            low = _canon_number(low)
        out.append(Token(_UNIT.get(low, low), raw[:1].isupper(), start))
        start = False
    return _merge_scales(out)


def _merge_scales(toks: list[Token]) -> list[Token]:
    """"2 million" (number-parser: "2 1000000") becomes one number, 2000000, and a currency written before
    its amount moves after it ("$ 2000000" -> "2000000 usd"), as units stand."""
    merged: list[Token] = []
    for t in toks:
        if t.text in _SCALES and merged and _NUMBER.match(merged[-1].text) and merged[-1].text not in _SCALES:
            prev = merged.pop()
            t = Token(_canon_number(str(Decimal(prev.text) * _SCALES[t.text])), prev.capital, prev.sentence_start)
        merged.append(t)
    out: list[Token] = []
    for t in merged:
        if _NUMBER.match(t.text) and out and out[-1].text in _CURRENCY:
            currency = out.pop()
            out.extend([Token(t.text, currency.capital, currency.sentence_start), currency])
        else:
            out.append(t)
    return out


def _words(toks: Sequence[Token]) -> list[str]:
    return [t.text for t in toks]


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n > 0 and any(list(haystack[i:i + n]) == list(needle) for i in range(len(haystack) - n + 1))


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | {"what", "which", "who", "whom", "how", "when", "where", "why", "does",
                                      "did", "do", "has", "have", "had", "its", "was", "were", "he", "she",
                                      "his", "her", "they", "them", "their", "i", "you", "we", "our", "your"}


def key_facts(reference: str) -> list[tuple[str, ...]]:
    """The key facts of a reference answer as normalised token sequences, in order of first mention.

    Numbers (with unit or currency), dates, times and quoted terms come first: when a reference has any,
    they are its key facts, and the names around them are its subject. Otherwise its proper nouns and
    multi-word names are. A capitalised word that only starts a sentence is not taken for a name."""
    exact, names = _facts(strip_diacritics(unicodedata.normalize("NFKC", reference)))
    return exact or names


def _facts(text: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    stop = _stopwords()
    exact = [q for m in _QUOTED.finditer(text) if (q := _trim(_words(tokens(m[1] or m[2])), stop))]
    toks = tokens(text)
    mid_sentence_capitals = {t.text for t in toks if t.capital and not t.sentence_start}
    names: list[tuple[str, ...]] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.text.startswith("__"):
            exact.append((t.text,))
        elif _NUMBER.match(t.text):
            unit = toks[i + 1].text if i + 1 < len(toks) and toks[i + 1].text in UNITS else None
            exact.append((t.text, unit) if unit else (t.text,))
        elif t.capital:
            j = i + 1
            while j < len(toks) and _continues_name(toks, j):
                j += 1
            name = _trim([x.text for x in toks[i:j]], stop)
            lone_opener = j == i + 1 and t.sentence_start and t.text not in mid_sentence_capitals
            if name and not lone_opener and not any(_contains(q, name) for q in exact):
                names.append(name)
            i = j
            continue
        i += 1
    return _unique(exact), _unique(names)


def _continues_name(toks: Sequence[Token], j: int) -> bool:
    nxt = toks[j]
    if nxt.sentence_start or _NUMBER.match(nxt.text) or nxt.text.startswith("__"):
        return False
    if nxt.capital:
        return True
    after = toks[j + 1] if j + 1 < len(toks) else None
    return nxt.text in _NAME_JOINERS and after is not None and after.capital and not after.sentence_start


def _trim(words: Sequence[str], stop: frozenset[str]) -> tuple[str, ...]:
    """Without the stop words at either end ("the Owl" -> "owl")."""
    lo, hi = 0, len(words)
    while lo < hi and words[lo] in stop:
        lo += 1
    while hi > lo and words[hi - 1] in stop:
        hi -= 1
    return tuple(words[lo:hi])


def _unique(facts: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return list(dict.fromkeys(facts))


def _recalled(fact: Sequence[str], answer: Sequence[str]) -> bool:
    """The fact's tokens in order; a number whose unit the answer leaves out still counts, one with a
    different unit does not."""
    if _contains(answer, fact):
        return True
    if len(fact) == 2 and _NUMBER.match(fact[0]):
        return any(tok == fact[0] and (answer[i + 1] if i + 1 < len(answer) else None) not in UNITS
                   for i, tok in enumerate(answer))
    return False


def fact_recall(answer: str, reference: str, *, question: str = "",
                keywords: Sequence[str] | None = None) -> FactScore:
    """Share of the reference's key facts (or of `keywords`) that `answer` states. Facts the question already
    states are not counted; with none left, content-word recall is the score (`basis="content words"`)."""
    ans = _words(tokens(answer))
    if keywords:
        facts = [tuple(_words(tokens(k))) for k in keywords]
        facts = [f for f in facts if f]
        basis: Basis = "keywords"
    else:
        asked = _words(tokens(question))
        exact, names = _facts(strip_diacritics(unicodedata.normalize("NFKC", reference)))
        facts = [f for f in exact if not _contains(asked, f)] or [f for f in names if not _contains(asked, f)]
        basis = "key facts"
        if not facts:
            stop = _stopwords()
            words = [w for w in _words(tokens(reference)) if w not in stop and w not in asked]
            words = words or [w for w in _words(tokens(reference)) if w not in stop]
            facts = [(w,) for w in dict.fromkeys(words)]
            basis = "content words"
    if not facts:
        return FactScore(float(not ans), basis, (), ())
    found = [f for f in facts if _recalled(f, ans)]
    return FactScore(len(found) / len(facts), basis, tuple(" ".join(f) for f in facts),
                     tuple(" ".join(f) for f in found))


def entities(text: str) -> list[tuple[str, ...]]:
    """The things a text names, as normalised token sequences in order of first mention: its numbers (with
    unit or currency), dates, times and quoted terms, then its proper nouns and multi-word names."""
    exact, names = _facts(strip_diacritics(unicodedata.normalize("NFKC", text)))
    return exact + [n for n in names if n not in exact]


def is_name(entity: Sequence[str]) -> bool:
    """Whether an entity (as `entities` gives it) is a name, not a number, date or time."""
    return bool(entity) and not (entity[0][:1].isdigit() or entity[0].startswith("__"))


def mentions(text: str, entity: Sequence[str]) -> bool:
    """Whether `text` states `entity` (normalised tokens, as `entities` gives them), as fact recall counts it."""
    return _recalled(tuple(entity), _words(tokens(text)))
