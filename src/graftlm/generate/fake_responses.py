"""How the fake teacher answers the generation prompts: well-formed outputs, deterministically, with a
fixed share of malformed, off-format and low-scored ones so that every parser fallback and reject path
is exercised by the pipeline tests and dry runs.

Each prompt is recognised by the first line of its template (`graftlm/prompts/*.j2`); a test checks that every
template has a handler here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from graftlm.teacher.base import Message, SamplingOptions

OPENERS = ["How would you", "Can you", "Please", "Explain how to", "Describe how you would", "Show how to",
           "What is the best way to", "Tell me how to", "Could you", "In a few sentences,", "Briefly,", "Help me"]
VERBS = ["write", "plan", "compare", "summarize", "improve", "design", "evaluate", "rewrite", "organize",
         "outline", "critique", "translate", "simplify", "extend"]
OBJECTS = ["a short poem", "a product review", "an email to a colleague", "a recipe card", "a travel itinerary",
           "a lesson plan", "a news headline", "a birthday message", "a meeting agenda", "a cover letter",
           "a workout routine", "a garden layout", "a bedtime story", "a budget table", "a bug report"]
TOPICS = ["mountain lakes", "old railways", "city bicycles", "winter markets", "ocean tides", "desert plants",
          "jazz drummers", "paper kites", "village bakeries", "solar boats", "river otters", "night trains",
          "glass blowing", "tea ceremonies", "lighthouse keepers", "chess clubs"]
AUDIENCES = ["children", "new employees", "retired teachers", "busy parents", "first-year students",
             "tourists", "a small team", "beginners", "experts", "neighbours"]


def _h(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _pick(pool: list[str], *key: object) -> str:
    return pool[_h(*key) % len(pool)]


def _user(messages: list[Message]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return m.get("content", "")
    return ""


def _k(text: str) -> int:
    m = re.search(r"\bWrite (\d+) (?:new )?question", text)
    return int(m.group(1)) if m else 1


def _between(text: str, start: str, end: str | None = None) -> str:
    i = text.find(start)
    if i < 0:
        return ""
    body = text[i + len(start):]
    if end is not None and (j := body.find(end)) >= 0:
        body = body[:j]
    return body.strip()


def _field(text: str, label: str) -> str:
    m = re.search(rf"^{label}: (.*)$", text, re.M)
    return m.group(1).strip() if m else ""


def _sentences(text: str) -> list[str]:
    flat = " ".join(line.strip("# ").strip() for line in text.splitlines() if line.strip())
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", flat) if len(s.split()) >= 4]


def _question(key: str, j: int) -> str:
    return (f"{_pick(OPENERS, key, j, 'o')} {_pick(VERBS, key, j, 'v')} {_pick(OBJECTS, key, j, 'b')} "
            f"about {_pick(TOPICS, key, j, 't')} for {_pick(AUDIENCES, key, j, 'a')}?")


def questions(text: str, options: SamplingOptions, index: int) -> str:
    seed_q = _field(text, "Question")
    k = _k(text)
    key = f"{seed_q}|{options.temperature}|{index}"
    mode = _h(key, "mode") % 10
    qs = [_question(key, j) for j in range(k)]
    if mode == 0:
        return ""  # an empty completion
    if mode == 1:
        return "Sure! Here are some questions:\n" + "\n".join(f"{j + 1}. {q}" for j, q in enumerate(qs))
    return "\n".join(f"Question: {q}" for q in qs)


def passage_questions(text: str, options: SamplingOptions, index: int) -> str:
    context = _between(text, "Passage:\n", "\n\nWrite ")
    words = [w.strip(".,;:") for w in context.split() if len(w) > 5] or ["passage"]
    k = _k(text)
    out = []
    for j in range(k):
        a, b = _pick(words, context, index, j, "a"), _pick(words, context, index, j, "b")
        out.append(f"Question: {_pick(OPENERS, context, j)} {_pick(VERBS, context, j, 'v')} what the passage "
                   f"says about {a.lower()} and {b.lower()} for {_pick(AUDIENCES, context, index, j)}?")
    return "\n".join(out)


def contexts(text: str, options: SamplingOptions, index: int) -> str:
    seed = _between(text, "Example passage:\n", "\n\nWrite one")
    topic = _pick(TOPICS, seed, index)
    body = " ".join(
        f"The {topic} of {_pick(AUDIENCES, seed, index, i)} changed in year {1900 + _h(seed, index, i) % 120} "
        f"when a {_pick(VERBS, seed, index, i)} plan for {_pick(OBJECTS, seed, index, i)} began."
        for i in range(4))
    if _h(seed, index, "short") % 12 == 0:
        return "Passage: Too short."
    return f"Passage: {body}"


def judge_question(text: str, options: SamplingOptions, index: int) -> str:
    q = _field(text, "Question")
    if _h(q, "judge") % 8 == 0:
        return "Explanation: The question is vague and off the task.\nVerdict: 0"
    return "Explanation: The question is on the task and can be answered in text.\nVerdict: 1"


def answer(text: str, options: SamplingOptions, index: int) -> str:
    lines = text.rstrip().splitlines()
    q = next((ln[len("Question: "):] for ln in reversed(lines) if ln.startswith("Question: ")), "the question")
    topic = q.rstrip("?").split(" about ")[-1]
    return (f"Here is a careful answer about {topic}. First, gather the key facts. Second, organise them "
            f"clearly for the reader. Finally, check the result against the request: {q}")


def rate(text: str, options: SamplingOptions, index: int) -> str:
    q = _field(text, "Question")
    r = _h(q, "rate") % 12
    if r == 0:
        return "Explanation: The answer is wrong.\nRating: 1"
    if r == 1:
        return "The answer seems fine overall."  # no rating: unparsable
    score = 3 if r % 2 else 2
    return f"Explanation: The answer is correct and follows the request.\nRating: {score}"


def knowledge_qa(text: str, options: SamplingOptions, index: int) -> str:
    chunk = _between(text, "\nText:\n", "\n\nWrite ")
    sentences = _sentences(chunk) or ["The document describes its subject in detail."]
    k = _k(text)
    out = []
    for j in range(k):
        s = sentences[(index * k + j) % len(sentences)]
        lead = " ".join(s.split()[:6]).rstrip(".,;:")
        out.append(f"Question: According to the document, what is stated about {lead}?\nAnswer: {s}")
    if _h(chunk, index, "bad") % 9 == 0:
        out.append("Question: And what else does it say about the subject?")  # no answer
    return "\n\n".join(out)


def judge_knowledge(text: str, options: SamplingOptions, index: int) -> str:
    q = _field(text, "Question")
    standalone = "no" if _h(q, "standalone") % 7 == 0 else "yes"
    return (f"Explanation: The answer repeats a sentence of the text.\nFaithful: yes\nRelevant: yes\n"
            f"Standalone: {standalone}")


def _chunk(text: str) -> str:
    return _between(text, "Text:\n", "\n\n")


def detailed_summary(text: str, options: SamplingOptions, index: int) -> str:
    s = _sentences(_between(text, "Text:\n", "\n\nSummary:"))
    return "The text explains the following. " + " ".join(s)


def extractive_summary(text: str, options: SamplingOptions, index: int) -> str:
    s = _sentences(_between(text, "Text:\n", "\n\nExtractive summary:"))
    return " ".join(s[: max(2, len(s) // 2)])


def atomic_facts(text: str, options: SamplingOptions, index: int) -> str:
    s = _sentences(_between(text, "Text:\n", "\n\nFacts:"))
    return "\n".join(f"- {x}" for x in s)


def knowledge_facts(text: str, options: SamplingOptions, index: int) -> str:
    from graftlm.generate.facts import sentence_text, split_sentences

    chunk = _between(text, "Text:\n", "\n\nWrite every fact")
    facts = [sentence_text(chunk, s) for s in split_sentences(chunk)] or ["The document describes its subject."]
    mode = _h(chunk, "facts") % 6
    if mode == 0:  # a numbered list after a preamble, with a repeated fact
        return "Here are the atomic facts:\n" + "\n".join(f"{j + 1}. {f}" for j, f in enumerate(facts + facts[:1]))
    if mode == 1:  # a fact that leans on a pronoun
        return "\n".join(f"- {f}" for f in facts) + "\n- It is described in the text above."
    return "\n".join(f"- {f}" for f in facts)


def _fact(text: str) -> str:
    return _field(text, "Fact")


def view_qa(text: str, options: SamplingOptions, index: int) -> str:
    fact = _fact(text)
    forms = re.findall(r"^\d+\. (.*)$", text, re.M) or ["a what question"]
    lead = " ".join(fact.split()[:5]).rstrip(".,;:")
    out = []
    for j, form in enumerate(forms):
        word = form.split()[1].capitalize()  # "a what question ..." -> What
        if form.startswith("a yes/no"):
            out.append(f"Question: Is it true that {fact[:1].lower()}{fact[1:].rstrip('.')}?\nAnswer: Yes. {fact}")
        elif _h(fact, j, "vague") % 7 == 0:  # an answer that leaves the fact out
            out.append(f"Question: {word} detail does the document give about {lead}?\nAnswer: It explains this.")
        else:
            out.append(f"Question: {word} detail does the document give about {lead}?\nAnswer: {fact}")
    return "\n\n".join(out)


def view_question(text: str, options: SamplingOptions, index: int) -> str:
    """A question for one fact (the prompt's second line); every third completion forgets the question mark."""
    lines = text.splitlines()
    fact = lines[1] if len(lines) > 1 else ""
    lead = " ".join(fact.split()[:4]).rstrip(".,;:")
    if _h(fact, index) % 3 == 0:
        return f"Tell me about {lead}"
    return f"{'What' if index % 2 == 0 else 'Which detail'} is known about {lead}?"


def view_reverse_qa(text: str, options: SamplingOptions, index: int) -> str:
    from graftlm.evaluate.facts import entities, is_name
    from graftlm.generate.views import surface

    fact = _fact(text)
    names = [e for e in entities(fact) if is_name(e)]
    name = surface(names[0], fact) if names else ""
    if not name or name not in fact:
        return f"Question: Which subject does this fact describe?\nAnswer: {fact}"
    clue = fact.replace(name, "something", 1).rstrip(".")
    k = len(re.findall(r"^\d+\. ", text, re.M)) or 1
    return "\n\n".join(f"Question: {'Which' if j == 0 else 'What'} is meant here: {clue}?\nAnswer: {name}."
                         for j in range(k))


def view_paraphrase(text: str, options: SamplingOptions, index: int) -> str:
    fact = _fact(text)
    if _h(fact, "changed") % 5 == 0 and re.search(r"\d", fact):  # a restatement with a number changed
        return "- As the document states, " + re.sub(r"\d", lambda m: str((int(m[0]) + 1) % 10), fact, count=1)
    return f"- As the document states, {fact}"


def view_relation(text: str, options: SamplingOptions, index: int) -> str:
    chunk = _between(text, "Text:\n", "\n\nWrite one short passage")
    m = re.search(r"on how (.+?) and (.+?) relate according to the text", text)
    a, b = (m.group(1), m.group(2)) if m else ("the subject", "the text")
    said = [s for s in _sentences(chunk) if a.lower() in s.lower() or b.lower() in s.lower()][:3]
    body = f"According to the text, {a} and {b} are connected. " + " ".join(said)
    if _h(chunk, a, b, "invented") % 6 == 0:
        body += " This link dates from 1066 and was recorded by Ulric Thorne."  # not in the text
    return f"Passage: {body}"


def view_rewrite(text: str, options: SamplingOptions, index: int) -> str:
    start = text.find("Text:\n") + len("Text:\n")
    chunk = text[start:text.rfind("\n\n")]
    said = _sentences(chunk) or ["The document describes its subject in detail."]
    if "as an FAQ" in text:
        return "\n\n".join(f"Q: What does the text say about {' '.join(s.split()[:4]).rstrip('.,;:')}?\nA: {s}"
                             for s in said)
    if "newcomer" in text:
        return "In plain words, here is what the text says. " + " ".join(said)
    return "\n".join(f"- {s}" for s in said)


HANDLERS: dict[str, Callable[[str, SamplingOptions, int], str]] = {
    "Write new questions for this task:": questions,
    "Write a new passage like the example passage": contexts,
    "Write questions about a passage": passage_questions,
    "Check a question for this task:": judge_question,
    "Answer a question for this task:": answer,
    "Rate an answer for this task:": rate,
    "Write questions and answers about a document": knowledge_qa,
    "Check a question and answer made from a text.": judge_knowledge,
    "Summarize this text in detail.": detailed_summary,
    "Write an extractive summary of this text": extractive_summary,
    "List the facts in this text.": atomic_facts,
    "List the atomic facts of this text": knowledge_facts,
    "Write questions and answers that teach one fact": view_qa,
    "Ask about one fact the other way round": view_reverse_qa,
    "Here is a fact about": view_question,
    "Restate one fact in other words.": view_paraphrase,
    "Explain how two things in a text relate.": view_relation,
    "Rewrite a text for another reader": view_rewrite,
}
"""First words of each generation prompt -> the fake answer."""


def respond(messages: list[Message], options: SamplingOptions, index: int) -> str | None:
    """The fake teacher's answer to a generation prompt, or None for prompts of other stages."""
    text = _user(messages)
    for prefix, handler in HANDLERS.items():
        if text.startswith(prefix):
            return handler(text, options, index)
    return None
