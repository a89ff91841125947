"""Facts first and views per fact: the pure parts (parsers on real-looking and malformed teacher replies,
sentence splitting, span location, entity pairs, question forms, fact dedup)."""

from __future__ import annotations

from graftlm.generate.coverage import dedup_facts, facts_stated
from graftlm.generate.facts import locate_span, sentence_text, split_sentences
from graftlm.generate.parse import parse_fact_list, parse_paraphrases, parse_passage, parse_view_qa
from graftlm.generate.views import entity_pairs, question_forms, surface

from .conftest import DOC

CHUNK = """## Towns

The largest town is Hollin, with 9,200 inhabitants. Hollin was founded in 1312
by salt traders. The second town is Marrow Bend, known for its wooden bridge built in 1790.

- The Brindle wool fair is held every October.
- Ok.
"""


# ---------------------------------------------------------------------------------------------------
# Facts


def test_fact_list_from_a_clean_bulleted_reply():
    parsed = parse_fact_list("- Hollin has 9,200 inhabitants.\n- Hollin was founded in 1312 by salt traders.\n")
    assert parsed.items == ["Hollin has 9,200 inhabitants.", "Hollin was founded in 1312 by salt traders."]
    assert parsed.rejects == []


def test_fact_list_from_a_numbered_list_after_a_preamble():
    reply = ("Sure! Here are the atomic facts of the text:\n\n1. Hollin has 9,200 inhabitants.\n"
             "2) **Marrow Bend is known for its wooden bridge.**\n3. Hollin has 9,200 inhabitants.")
    parsed = parse_fact_list(reply)
    assert parsed.items == ["Hollin has 9,200 inhabitants.", "Marrow Bend is known for its wooden bridge."]
    assert [r.reason for r in parsed.rejects] == ["repeated"]


def test_fact_list_rejects_by_reason():
    reply = "\n".join([
        "Facts:",
        "The facts are as follows:",                      # a preamble in plain lines
        "Where is Hollin?",                               # a question
        "Hollin grew.",                                   # a fragment
        "It is 48 kilometres long.",                      # a pronoun, and no name
        "It lies in the Karsk Mountains near Lake Tamm.", # a pronoun but names things: kept
        " ".join(["Hollin"] + ["is a town with old houses"] * 8) + ".",
        "The Osk River flows from the Karsk Mountains into the",  # the reply was cut off
    ])
    parsed = parse_fact_list(reply)
    assert parsed.items == ["It lies in the Karsk Mountains near Lake Tamm."]
    assert [r.reason for r in parsed.rejects] == ["not_a_fact", "not_a_fact", "not_a_fact", "pronoun_only",
                                                  "too_long", "truncated"]


def test_fact_list_of_an_empty_reply():
    assert [r.reason for r in parse_fact_list("").rejects] == ["empty"]
    assert [r.reason for r in parse_fact_list("Facts:\n").rejects] == ["empty"]


def test_sentences_skip_headings_join_wrapped_lines_and_keep_list_items():
    spans = split_sentences(CHUNK)
    texts = [sentence_text(CHUNK, s) for s in spans]
    assert texts == ["The largest town is Hollin, with 9,200 inhabitants.",
                     "Hollin was founded in 1312 by salt traders.",
                     "The second town is Marrow Bend, known for its wooden bridge built in 1790.",
                     "The Brindle wool fair is held every October."]
    assert CHUNK[spans[0][0]:spans[0][1]] == texts[0]  # spans are offsets into the chunk itself
    assert "\n" in CHUNK[spans[1][0]:spans[1][1]]


def test_span_is_the_best_overlapping_sentence_or_none():
    spans = split_sentences(CHUNK)
    span = locate_span("Salt traders founded Hollin in the year 1312.", CHUNK, spans)
    assert span is not None and "founded in 1312" in CHUNK[span[0]:span[1]]
    span = locate_span("Marrow Bend has a bridge made of wood from 1790.", CHUNK, spans)
    assert span is not None and CHUNK[span[0]:span[1]].startswith("The second town")
    assert locate_span("Penguins eat krill near Antarctica.", CHUNK, spans) is None


def test_duplicate_facts_across_chunks_point_to_the_first_and_get_their_chunk_part():
    facts = [{"fact_id": "a", "chunk_id": "c1", "text": "Hollin was founded in 1312 by salt traders."},
             {"fact_id": "b", "chunk_id": "c2", "text": "Hollin was founded in 1312 by the salt traders."},
             {"fact_id": "c", "chunk_id": "c2", "text": "Marrow Bend is known for its wooden bridge."}]
    out = dedup_facts(facts, 0.7, {"c1": "train", "c2": "eval"}.__getitem__)
    assert [f["duplicate_of"] for f in out] == [None, "a", None]
    assert [f["part"] for f in out] == ["train", "eval", "eval"]


# ---------------------------------------------------------------------------------------------------
# Views

FACT = "Hollin was founded in 1312 by salt traders."


def test_qa_view_keeps_pairs_that_state_the_fact():
    reply = ("Question: When was Hollin founded?\nAnswer: In 1312.\n\n"
             "Question: Was Hollin founded by salt traders in 1312?\nAnswer: Yes.")
    parsed = parse_view_qa(reply, FACT)
    assert [(p.question, p.answer) for p in parsed.items] == [
        ("When was Hollin founded?", "In 1312."), ("Was Hollin founded by salt traders in 1312?", "Yes.")]


def test_qa_view_rejects_a_missing_number_a_non_question_and_format_errors():
    reply = ("Here are two questions.\n"
             "Question: When was Hollin founded?\nAnswer: A long time ago, by traders.\n\n"
             "Question: Hollin and its founders.\nAnswer: Salt traders founded it in 1312.\n\n"
             "Question: Who founded Hollin in the Brindle Valley?")
    parsed = parse_view_qa(reply, FACT)
    assert parsed.items == []
    assert sorted(r.reason for r in parsed.rejects) == ["answer_missing_fact", "missing_answer", "no_question"]
    assert [r.reason for r in parse_view_qa("", FACT).rejects] == ["empty"]
    assert [r.reason for r in parse_view_qa("I cannot help with that.", FACT).rejects] == ["no_pair_found"]


def test_reverse_qa_answer_must_name_the_entity():
    fact = "Marrow Bend is known for its wooden bridge built in 1790."
    good = parse_view_qa("Question: Which town is known for a wooden bridge built in 1790?\nAnswer: Marrow Bend.", fact)
    bad = parse_view_qa("Question: Which town is known for a wooden bridge built in 1790?\nAnswer: A small town.", fact)
    assert len(good.items) == 1 and [r.reason for r in bad.rejects] == ["answer_missing_fact"]


def test_paraphrases_keep_every_name_and_number():
    reply = ("Paraphrases:\n- In 1312, salt traders founded Hollin.\n- Salt traders founded Hollin in 1321.\n"
             "- Hollin was founded in 1312 by salt traders.\n- Salt traders founded Hollin in 1312 near Dremmel.\n"
             "- Founded 1312.\n- In 1312, salt traders founded Hollin.")
    parsed = parse_paraphrases(reply, FACT)
    assert parsed.items == ["In 1312, salt traders founded Hollin."]
    assert [r.reason for r in parsed.rejects] == ["changes_facts", "same_as_fact", "changes_facts", "too_short",
                                                  "repeated"]
    assert [r.reason for r in parse_paraphrases("  ", FACT).rejects] == ["empty"]


def test_passage_must_be_grounded_and_name_both_entities():
    pair = (("hollin",), ("1312",))
    ok = "Passage: Hollin dates from 1312, when salt traders founded it; it is now the largest town."
    assert parse_passage(ok, CHUNK, pair).items == [ok.removeprefix("Passage: ")]
    invented = "Hollin dates from 1312, when salt traders founded it; its castle was built in 1450 by Ulric."
    one_side = "Hollin is the largest town and has many inhabitants and old houses along the river."
    assert [r.reason for r in parse_passage(invented, CHUNK, pair).rejects] == ["not_grounded"]
    assert [r.reason for r in parse_passage(one_side, CHUNK, pair).rejects] == ["missing_entity"]
    assert [r.reason for r in parse_passage("Hollin, 1312.", CHUNK, pair).rejects] == ["too_short"]
    assert [r.reason for r in parse_passage("", CHUNK).rejects] == ["empty"]
    faq = ("Q: What is the largest town?\nA: Hollin, with 9,200 inhabitants.\n\n"
           "Q: When was the bridge of Marrow Bend built?\nA: In 1790.")
    assert parse_passage(faq, CHUNK).items  # the FAQ's own Q/A labels are no invented names


def test_entity_pairs_prefer_names_named_together_often():
    sentences = [sentence_text(DOC, s) for s in split_sentences(DOC)]
    pairs = entity_pairs(DOC, sentences, 3)
    assert len(pairs) == 3 and all(("hollin",) in p for p in pairs)  # Hollin is in 4 sentences
    assert (("1312",), ("hollin",)) in pairs
    assert all(not (a[0].isdigit() and b[0].isdigit()) for a, b in entity_pairs(DOC, sentences, 50))
    assert entity_pairs("no names here at all.", ["no names here at all."], 3) == []
    assert surface(("marrow", "bend"), DOC) == "Marrow Bend" and surface(("9200",), DOC) == "9200"


def test_question_forms_rotate_and_fit_the_fact():
    dated = [question_forms(FACT, i, 2) for i in range(4)]
    assert all(len(f) == 2 and f[0] != f[1] for f in dated)
    assert len({form for f in dated for form in f}) >= 5  # the forms rotate over facts
    assert any(form.startswith("a when question") for f in dated for form in f)
    undated = {form for i in range(6) for form in question_forms("Hollin lies on the Osk River.", i, 2)}
    assert not any(form.startswith(("a when", "a how many")) for form in undated)
    assert {form.rsplit(" with ", 1)[1] for form in undated} == {"a short answer (a few words)",
                                                            "a long answer (one full sentence)"}


def test_facts_stated_by_a_passage():
    facts = [{"fact_id": "a", "text": FACT}, {"fact_id": "b", "text": "Marrow Bend has a bridge from 1790."}]
    assert facts_stated(facts, "Salt traders founded Hollin in 1312.") == ["a"]
    assert facts_stated(facts, "The valley has sheep.") == []


def test_names_joined_by_and_are_grounded_when_each_is_and_pairs_never_nest():
    chunk = ("Hollin lies on the Osk River. Callowford and Port Anselm trade wool with Hollin every year. "
             "The harbour of Port Anselm is deep.")
    passage = "According to the text, Hollin and Port Anselm are linked by the wool that Callowford also trades."
    assert parse_passage(passage, chunk, (("hollin",), ("port", "anselm"))).items
    sentences = [sentence_text(chunk, s) for s in split_sentences(chunk)]
    pairs = entity_pairs(chunk, sentences, 20)
    assert (("hollin",), ("callowford", "and", "port", "anselm")) in pairs
    assert (("hollin",), ("port", "anselm")) in pairs
    assert not any(set(a) < set(b) or set(b) < set(a) for a, b in pairs)
