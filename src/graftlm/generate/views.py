"""Views of facts (`generate.views`): each fact of a chunk taught in several renderings, each rendering a
generation task with its own prompt (`prompts/view_*.j2`), parser (`graftlm.generate.parse`), reject
reasons and accounting (reject stage = the view's name):

- `qa`: Q&A pairs about the fact, in forms rotating over facts (`question_forms`), short and long answers;
- `cloze` (no teacher): the fact's sentence asked for each of its numbers, dates and names in turn
  (`graftlm.generate.cloze`), answered by the sentence;
- `reverse_qa`: the fact asked the other way round (the attribute given, the entity asked for);
- `paraphrase`: restatements keeping every name and number;
- `relation`: per chunk, for the most frequent pairs of entities in it (`entity_pairs`), a passage on how
  they relate according to the chunk (EntiGraph-style);
- `rewrite:<kind>`: the whole chunk as an FAQ, for a newcomer, or as key points.

Q&A views are `task: "qa"` samples (deduplicated, split and capped like knowledge Q&A) and, with relation
passages, pass the knowledge judge when `generate.judge_knowledge` is on. Paraphrases, relation passages and
rewrites are document-style text trained on every token. Every sample names its view and the facts it
states (`fact_ids`). All requests of a chunk are sent together, so the request pool batches them.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import Any

from graftlm.evaluate.facts import entities, is_name, mentions
from graftlm.generate.cloze import cloze_questions, topic_names
from graftlm.generate.coverage import facts_stated
from graftlm.generate.freeform import merge
from graftlm.generate.knowledge import check_pair
from graftlm.generate.parse import parse_paraphrases, parse_passage, parse_view_qa
from graftlm.generate.pipeline import PRIORITY, ChunkText, Context, Unit, UnitResult, failed, make_sample
from graftlm.generate.questions import find_question, outline_topic, question_key, question_problem
from graftlm.taxonomy.model import QA
from graftlm.templates import render

Entity = tuple[str, ...]

QA_FORMS = {
    "what": "a what question",
    "which": "a which question",
    "who": "a who question (or what, if the fact names no person or group)",
    "where": "a where question (or what, if the fact names no place)",
    "when": "a when question",
    "how_many": "a how many or how much question",
    "yes_no": "a yes/no question, answered with yes or no and the fact",
}
"""The question forms of `qa` views, rotated over facts."""

ANSWER_LENGTHS = ("a short answer (a few words)", "a long answer (one full sentence)")

REWRITE_INSTRUCTIONS = {
    "faq": 'Rewrite the text as an FAQ: the questions a reader would ask, each followed by its answer from the '
           'text. Use the format "Q: ..." then "A: ...".',
    "newcomer": "Explain the text to a newcomer who knows nothing about the subject, in plain words. Keep every "
                "name, number and date of the text.",
    "key_points": 'List the key points of the text, one per line starting with "- ". Keep every name, number '
                  "and date of the text.",
}
"""The instruction of each whole-chunk rewrite (`generate.views.rewrites`)."""

REWRITE_PROMPTS = {
    "faq": 'Questions and answers about the document "{doc}".',
    "newcomer": 'The document "{doc}" explained for a newcomer.',
    "key_points": 'The key points of the document "{doc}".',
}
"""The user turn of a rewrite sample (trained on every token, like its text)."""

PARAPHRASE_PROMPT = 'A fact from the document "{doc}".'
RELATION_PROMPT = 'How are {a} and {b} related, according to the document "{doc}"?'


QUESTION_TOKENS = 32
"""Tokens a `question` view's reply may take: one question."""
QUESTION_SAMPLES = 4
"""Completions asked per wanted `question` view (one batched request): the embedded 135M writes a usable
question for a fact in about one reply of four."""
QUESTION_TEMPERATURE = 0.8
"""Sampling temperature of `question` views (as `graft taxonomy draft` asks its per-sentence questions)."""


def question_forms(fact: str, index: int, k: int) -> list[str]:
    """The `k` question forms asked for fact number `index` of a chunk: the forms that fit the fact (when
    for a date or year, how many for a number), rotated over facts, with short and long answers
    alternating."""
    keys = ["what", "which", "yes_no", "who", "where"]
    if re.search(r"\d", fact):
        keys.insert(1, "how_many")
    if re.search(r"\b(1\d{3}|20\d{2})\b|\b(January|February|March|April|May|June|July|August|September|"
                 r"October|November|December)\b", fact):
        keys.insert(1, "when")
    lengths = answer_lengths(index, k)
    return [f"{QA_FORMS[keys[(index * k + j) % len(keys)]]} with {lengths[j]}" for j in range(k)]


def answer_lengths(index: int, k: int) -> list[str]:
    """Short and long answers alternating, starting with a different one for consecutive facts."""
    return [ANSWER_LENGTHS[(index + j) % 2] for j in range(k)]


def chunk_entities(text: str, sentences: list[str]) -> Counter[Entity]:
    """The entities a chunk names (`graftlm.evaluate.facts.entities`: names, numbers with units, dates),
    each with the number of sentences naming it."""
    counts: Counter[Entity] = Counter()
    for e in entities(text):
        counts[e] = sum(1 for s in sentences if mentions(s, e))
    return counts


def entity_pairs(text: str, sentences: list[str], n: int) -> list[tuple[Entity, Entity]]:
    """The `n` entity pairs of a chunk to write relation passages for: pairs with at least one name and
    neither part of the other ("Port Anselm" in "Callowford and Port Anselm"), most sentences naming both
    first, then the most frequent entities; ties in order of first mention."""
    counts = chunk_entities(text, sentences)
    named = [e for e, c in counts.items() if c > 0]
    scored = []
    for (i, a), (j, b) in combinations(enumerate(named), 2):
        if not (is_name(a) or is_name(b)) or _within(a, b) or _within(b, a):
            continue
        together = sum(1 for s in sentences if mentions(s, a) and mentions(s, b))
        scored.append((-together, -(counts[a] * counts[b]), i, j, a, b))
    scored.sort()
    return [(a, b) for *_, a, b in scored[:n]]


def _within(x: Entity, y: Entity) -> bool:
    return any(y[k:k + len(x)] == x for k in range(len(y) - len(x) + 1))


def surface(entity: Entity, text: str) -> str:
    """How the chunk writes an entity (its first spelling there), else its normalised words."""
    pattern = r"\W+".join(re.escape(w) for w in entity)
    m = re.search(rf"\b{pattern}\b", text, re.I) if entity and not entity[0].startswith("__") else None
    return m.group(0) if m else " ".join(entity)


def _meta(chunk: ChunkText, view: str, fact_ids: list[str]) -> dict[str, Any]:
    return {"view": view, "fact_ids": fact_ids, "chunk_id": chunk.chunk_id, "doc_sha256": chunk.doc_sha256,
            "doc": chunk.doc}


def _doc_name(chunk: ChunkText) -> str:
    return Path(chunk.doc).name


async def _qa_view(ctx: Context, unit: Unit, chunk: ChunkText, fact: dict[str, Any], view: str,
                   forms: list[str]) -> UnitResult:
    res = UnitResult(unit.unit_id, unit.leaf.name)
    where = {"chunk_id": chunk.chunk_id, "fact_id": fact["fact_id"]}
    reply = await ctx.teacher.chat(render(f"view_{view}", domain=unit.leaf.domain, fact=fact["text"], forms=forms),
                                   ctx.sampled(1), PRIORITY["views"])
    if why := failed(reply):
        res.generated += 1
        res.reject(view, why, **where)
        return res
    parsed = parse_view_qa(reply.texts[0], fact["text"])
    res.generated += len(parsed.items) + len(parsed.rejects)
    res.reject_parse(view, parsed.rejects, request_hash=reply.request_hash, **where)
    meta = _meta(chunk, view, [fact["fact_id"]])
    merge(res, list(await asyncio.gather(*(check_pair(ctx, unit, pair, chunk.text, reply.request_hash, meta)
                                           for pair in parsed.items))))
    return res


async def _question_view(ctx: Context, unit: Unit, chunk: ChunkText, fact: dict[str, Any]) -> UnitResult:
    """View `question`: questions the teacher writes for the fact alone (short, sampled, several per request),
    each answered by the fact itself; a question must be about the fact and leave something of it to answer
    (`graftlm.generate.questions.question_problem`)."""
    res = UnitResult(unit.unit_id, unit.leaf.name)
    where = {"chunk_id": chunk.chunk_id, "fact_id": fact["fact_id"]}
    k = ctx.config.views.question
    topic = outline_topic(unit.leaf.document_outline, unit.leaf.domain)
    options = replace(ctx.sampled(QUESTION_SAMPLES * k, QUESTION_TEMPERATURE), max_tokens=QUESTION_TOKENS,
                      stop=("\n",))
    reply = await ctx.teacher.chat(render("draft_sentence_question", sentence=fact["text"], topic=topic), options,
                                   PRIORITY["views"])
    if why := failed(reply):
        res.generated += 1
        res.reject("question", why, **where)
        return res
    pairs: list[QA] = []
    for text in reply.texts:  # QUESTION_SAMPLES * k completions; those after the k-th kept one are spares, unused
        if len(pairs) >= k:
            break
        res.generated += 1
        question = find_question(text)
        why = "no_question" if question is None else question_problem(question, fact["text"], chunk.text, topic)
        if question is not None and why is None and any(question_key(question) == question_key(p.question) for p in pairs):
            why = "repeated"
        if why or question is None:
            res.reject("question", why or "no_question", text, **where)
            continue
        pairs.append(QA(question, fact["text"]))
    meta = _meta(chunk, "question", [fact["fact_id"]])
    merge(res, list(await asyncio.gather(*(check_pair(ctx, unit, pair, chunk.text, reply.request_hash, meta)
                                           for pair in pairs))))
    return res


def cloze_view(unit: Unit, chunk: ChunkText, facts: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """View `cloze`: up to `k` teacher-free cloze questions per fact, each answered by the fact; a fact that
    opens with a pronoun is asked with the fact before it in front. Names of the leaf's topic (its
    `document_outline` before the colon) are not asked for."""
    skip = topic_names(outline_topic(unit.leaf.document_outline, ""))
    out = []
    for i, fact in enumerate(facts):
        before = facts[i - 1]["text"] if i else None
        for question in cloze_questions(fact["text"], before, k, skip):
            out.append(make_sample(unit.leaf, question, fact["text"], task="qa", teacher=None, request_hashes=[],
                                   scores={}, question=question, **_meta(chunk, "cloze", [fact["fact_id"]])))
    return out


async def _paraphrase_view(ctx: Context, unit: Unit, chunk: ChunkText, fact: dict[str, Any]) -> UnitResult:
    res = UnitResult(unit.unit_id, unit.leaf.name)
    where = {"chunk_id": chunk.chunk_id, "fact_id": fact["fact_id"]}
    reply = await ctx.teacher.chat(render("view_paraphrase", fact=fact["text"], k=ctx.config.views.paraphrase),
                                   ctx.sampled(1), PRIORITY["views"])
    if why := failed(reply):
        res.generated += 1
        res.reject("paraphrase", why, **where)
        return res
    parsed = parse_paraphrases(reply.texts[0], fact["text"])
    res.generated += len(parsed.items) + len(parsed.rejects)
    res.reject_parse("paraphrase", parsed.rejects, request_hash=reply.request_hash, **where)
    for text in parsed.items:
        res.candidates.append(make_sample(
            unit.leaf, PARAPHRASE_PROMPT.format(doc=_doc_name(chunk)), text, task="paraphrase", unmask=True,
            teacher=ctx.teacher_id, request_hashes=[reply.request_hash], scores={},
            **_meta(chunk, "paraphrase", [fact["fact_id"]])))
    return res


async def _relation_view(ctx: Context, unit: Unit, chunk: ChunkText, pair: tuple[Entity, Entity],
                         facts: list[dict[str, Any]]) -> UnitResult:
    res = UnitResult(unit.unit_id, unit.leaf.name)
    a, b = (surface(e, chunk.text) for e in pair)
    res.generated = 1
    reply = await ctx.teacher.chat(render("view_relation", chunk=chunk.text, a=a, b=b), ctx.answering(),
                                   PRIORITY["views"])
    if why := failed(reply):
        res.reject("relation", why, chunk_id=chunk.chunk_id, entities=[a, b])
        return res
    parsed = parse_passage(reply.texts[0], chunk.text, required=pair)
    if not parsed.items:
        res.reject_parse("relation", parsed.rejects[:1], chunk_id=chunk.chunk_id, entities=[a, b],
                         request_hash=reply.request_hash)
        return res
    passage = parsed.items[0]
    question = RELATION_PROMPT.format(a=a, b=b, doc=_doc_name(chunk))
    meta = {**_meta(chunk, "relation", facts_stated(facts, passage)), "entities": [a, b]}
    merge(res, [await check_pair(ctx, unit, QA(question, passage), chunk.text, reply.request_hash, meta,
                                 task="relation", unmask=True)])
    return res


async def _rewrite_view(ctx: Context, unit: Unit, chunk: ChunkText, kind: str,
                        facts: list[dict[str, Any]]) -> UnitResult:
    res = UnitResult(unit.unit_id, unit.leaf.name)
    view = f"rewrite:{kind}"
    res.generated = 1
    reply = await ctx.teacher.chat(render("view_rewrite", domain=unit.leaf.domain, chunk=chunk.text,
                                          instruction=REWRITE_INSTRUCTIONS[kind]), ctx.answering(), PRIORITY["views"])
    if why := failed(reply):
        res.reject(view, why, chunk_id=chunk.chunk_id)
        return res
    parsed = parse_passage(reply.texts[0], chunk.text)
    if not parsed.items:
        res.reject_parse(view, parsed.rejects[:1], chunk_id=chunk.chunk_id, request_hash=reply.request_hash)
        return res
    text = parsed.items[0]
    res.candidates.append(make_sample(unit.leaf, REWRITE_PROMPTS[kind].format(doc=_doc_name(chunk)), text,
                                      task="rewrite", unmask=True, teacher=ctx.teacher_id,
                                      request_hashes=[reply.request_hash], scores={},
                                      **_meta(chunk, view, facts_stated(facts, text))))
    return res


async def run_views(ctx: Context, unit: Unit, chunk: ChunkText, facts: list[dict[str, Any]],
                    sentences: list[str], res: UnitResult) -> None:
    """Every view of a chunk's facts (records of `graftlm.generate.facts`) and of the chunk (its `sentences`
    pick the entity pairs), requested together; results added to `res` in a fixed order (deterministic output
    whatever finished first)."""
    v = ctx.config.views
    jobs = []
    for i, fact in enumerate(facts):
        if v.qa:
            jobs.append(_qa_view(ctx, unit, chunk, fact, "qa", question_forms(fact["text"], i, v.qa)))
        if v.question:
            jobs.append(_question_view(ctx, unit, chunk, fact))
        if v.reverse_qa:
            jobs.append(_qa_view(ctx, unit, chunk, fact, "reverse_qa", answer_lengths(i, v.reverse_qa)))
        if v.paraphrase:
            jobs.append(_paraphrase_view(ctx, unit, chunk, fact))
    if v.relations:
        jobs.extend(_relation_view(ctx, unit, chunk, pair, facts)
                    for pair in entity_pairs(chunk.text, sentences, v.relations))
    jobs.extend(_rewrite_view(ctx, unit, chunk, kind, facts) for kind in v.rewrites)
    parts = list(await asyncio.gather(*jobs))
    res.generated += sum(p.generated for p in parts)
    merge(res, parts)
    if v.cloze:
        made = cloze_view(unit, chunk, facts, v.cloze)
        res.generated += len(made)
        res.candidates.extend(made)
