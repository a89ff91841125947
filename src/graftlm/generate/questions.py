"""Pure checks of questions a teacher wrote for one sentence or fact: find the question in a reply, and say
why it cannot be asked of its sentence. Shared by `graft taxonomy draft` (per-sentence rounds) and
generation's `question` view (`graftlm.generate.views`)."""

from __future__ import annotations

import re

MIN_GROUNDED_SHARE = 0.6
"""Share of an answer's content words that must appear in its context for the answer to be kept."""
MIN_QUESTION_WORDS = 4
"""A drafted question has at least this many words."""
_WORD = re.compile(r"[a-z0-9]+")
_QUESTION = re.compile(r"\b(?:What|Which|Who|Whom|Whose|When|Where|Why|How|Is|Are|Was|Were|Does|Do|Did|Can|In what|In which)"
                       r"\b[^?\n\":]*\?")
_META = frozenset({"sentence", "sentences", "question", "questions", "answer", "answers", "text", "fact", "facts",
                   "passage", "document", "statement"})
_QUESTION_WORDS = frozenset({"many", "much", "long", "often", "far", "old", "kind", "type", "name", "named", "called"})
_STOP = frozenset(re.findall(r"\w+", """the a an of and or to in on at by for with from is are was were be been it
its this that these those as which who what when where how why does did do has have had not no yes there their
they he she his her we you i"""))


def outline_topic(outline: str, fallback: str) -> str:
    """What a leaf's documents are about: its `document_outline` before the first colon ("The Isle of Vescary"
    of "The Isle of Vescary, a fictional island ...: its geography, ..."), else `fallback`."""
    return outline.split(":")[0].strip() or fallback


def question_key(question: str) -> str:
    """A question with case and spacing dropped: two questions with one key are the same question, asked twice
    in one reply or request."""
    return " ".join(question.lower().split())


def content_words(text: str) -> list[str]:
    """The lower-cased words of `text` that are not stop words."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def question_match(text: str) -> re.Match[str] | None:
    """The first question of at least `MIN_QUESTION_WORDS` words in `text`, as a match."""
    return next((m for m in _QUESTION.finditer(text) if len(m.group(0).split()) >= MIN_QUESTION_WORDS), None)


def find_question(text: str) -> str | None:
    """The first question in a teacher's reply: a sentence that starts with a question word and ends with `?`,
    wherever it stands (after `Question:`, a number, a quote, or a lead-in such as `What is the answer to the
    question:`); None when the reply holds none."""
    m = question_match(text)
    return " ".join(m.group(0).split()) if m else None


def question_problem(question: str, sentence: str, context: str, topic: str) -> str | None:
    """Why `question` cannot be asked of `sentence` (a reject reason), or None when it can: it must not talk
    about the text itself (unless the sentence does), must share a content word with the sentence beyond the topic's (a question about the topic alone
    only of a sentence that names it), must take most of
    its content words from the context or the topic, and must leave something of the sentence to answer."""
    words = [w for w in content_words(question) if w not in _QUESTION_WORDS]
    said, known = set(content_words(sentence)), set(content_words(context)) | set(content_words(topic))
    if any(w in _META and w not in said for w in words):
        return "about_the_text"
    named = set(content_words(topic))
    specific = [w for w in words if w not in named]
    if not words or not (any(w in said for w in specific) if specific else named <= said):
        return "not_about_the_sentence"
    if sum(w in known for w in words) / len(words) < MIN_GROUNDED_SHARE:
        return "not_grounded"
    if not said - set(content_words(question)):
        return "answer_in_question"
    return None
