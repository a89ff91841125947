"""The pure parsers: structured format first, tolerant fallbacks, rejects with reasons."""

from __future__ import annotations

from graftlm.generate.parse import (
    parse_answer,
    parse_context,
    parse_facts,
    parse_knowledge_check,
    parse_qa_pairs,
    parse_questions,
    parse_rating,
    parse_summary,
    parse_verdict,
)


def test_questions_labelled_lines():
    out = parse_questions("Question: How do I bake bread at home?\nQuestion 2: What flour suits rye bread best?")
    assert out.items == ["How do I bake bread at home?", "What flour suits rye bread best?"]
    assert out.rejects == []


def test_questions_never_split_at_question_marks():
    text = "Question: What is 2+2? Explain why, step by step, for a child."
    assert parse_questions(text).items == ["What is 2+2? Explain why, step by step, for a child."]


def test_questions_multiline_with_content_after_colon():
    text = "Question: Rewrite this paragraph politely:\n\nGive me the report now.\n\nQuestion: Write a haiku about rain."
    out = parse_questions(text)
    assert out.items == ["Rewrite this paragraph politely:\n\nGive me the report now.", "Write a haiku about rain."]


def test_questions_numbered_list_fallback_and_chatter_ignored():
    text = "Sure! Here are some:\n1. Write a short poem about the sea.\n2) Describe a sunset for a child.\nHope it helps."
    out = parse_questions(text)
    assert out.items == ["Write a short poem about the sea.", "Describe a sunset for a child."]


def test_questions_json_fallback():
    out = parse_questions('```json\n["Write a limerick about cats.", {"question": "Explain tides to a child."}]\n```')
    assert out.items == ["Write a limerick about cats.", "Explain tides to a child."]


def test_questions_plain_single_answer_and_rejects():
    assert parse_questions("Write a limerick about a lazy cat.").items == ["Write a limerick about a lazy cat."]
    assert [r.reason for r in parse_questions("").rejects] == ["empty"]
    out = parse_questions("Question: Hi\nQuestion: Write a story about a dragon.\nQuestion: Write a story about a dragon.")
    assert out.items == ["Write a story about a dragon."]
    assert sorted(r.reason for r in out.rejects) == ["repeated_in_answer", "too_short"]
    long_text = "para one\n\n" + " ".join(["word"] * 100)
    assert [r.reason for r in parse_questions(long_text).rejects] == ["no_question_found"]


def test_questions_stop_at_answer_label():
    out = parse_questions("Question: What is the capital of France today?\nAnswer: Paris.")
    assert out.items == ["What is the capital of France today?"]
    out = parse_questions("Question: What is the capital of France today? Answer: Paris.")
    assert out.items == ["What is the capital of France today?"]


def test_context_strips_label_and_runon_questions():
    body = "The harbour was rebuilt in 1950 after the storm, and fishing boats came back within two short years."
    out = parse_context(f"Here you go.\nPassage: {body}\nQuestion: What happened?")
    assert out.items == [body]
    assert [r.reason for r in parse_context("Passage: Too short.").rejects] == ["too_short"]


def test_verdict_structured_and_fallbacks():
    v = parse_verdict("Explanation: it is fine.\nVerdict: 1")
    assert v.items[0].value == 1 and "fine" in v.items[0].explanation
    assert parse_verdict("The question is off task. **Verdict:** 0").items[0].value == 0
    assert parse_verdict("It is a good question. 1").items[0].value == 1
    assert parse_verdict("No, this is unsafe.").items[0].value == 0
    assert [r.reason for r in parse_verdict("I am not sure about this one.").rejects] == ["unparsable"]


def test_rating_structured_fallbacks_and_range():
    r = parse_rating("Explanation: Correct but short.\nRating: 2")
    assert r.items[0].score == 2 and r.items[0].explanation == "Correct but short."
    assert parse_rating("Great answer, 3/3").items[0].score == 3
    assert parse_rating("Rating: [[3]]").items[0].score == 3
    assert [x.reason for x in parse_rating("Rating: 7").rejects] == ["out_of_range"]
    assert [x.reason for x in parse_rating("Looks fine to me.").rejects] == ["unparsable"]


def test_answer_label_runon_and_echo():
    assert parse_answer("Answer: Paris is the capital.\nQuestion: And Spain?").items == ["Paris is the capital."]
    assert parse_answer("Multi-line\nanswer text").items == ["Multi-line\nanswer text"]
    assert [r.reason for r in parse_answer("What is it?", "What is it?").rejects] == ["echoes_question"]
    assert [r.reason for r in parse_answer("   ").rejects] == ["empty"]


def test_qa_pairs_labelled_json_and_missing_answer():
    out = parse_qa_pairs("Question: When was Hollin founded?\nAnswer: In 1312.\n\nQ: Who founded Hollin town?\nA: Salt traders.")
    assert [(p.question, p.answer) for p in out.items] == [
        ("When was Hollin founded?", "In 1312."), ("Who founded Hollin town?", "Salt traders.")]
    out = parse_qa_pairs("Question: How long is the valley?\nAnswer: 48 km.\nQuestion: What else is there?")
    assert len(out.items) == 1 and [r.reason for r in out.rejects] == ["missing_answer"]
    out = parse_qa_pairs('[{"question": "How long is the valley?", "answer": "48 km"}]')
    assert out.items[0].answer == "48 km"
    assert [r.reason for r in parse_qa_pairs("The valley is nice.").rejects] == ["no_pair_found"]
    inline = parse_qa_pairs("Question: What is the smallest town? Answer: The smallest town is Hunby.")
    assert [(p.question, p.answer) for p in inline.items] == [("What is the smallest town?", "The smallest town is Hunby.")]


def test_knowledge_check():
    ok = parse_knowledge_check("Explanation: supported.\nFaithful: yes\nRelevant: yes\nStandalone: yes")
    assert ok.items[0].passed and ok.items[0].explanation == "supported."
    bad = parse_knowledge_check("Faithful: yes\nRelevant: yes\nStandalone: no, it says 'the text'")
    assert not bad.items[0].passed and bad.items[0].checks["standalone"] is False
    assert parse_knowledge_check("Yes, all good.").items[0].passed
    assert [r.reason for r in parse_knowledge_check("hmm").rejects] == ["unparsable"]


def test_summary_and_facts():
    assert parse_summary("Summary: The valley is long and has two towns and a railway.").items
    assert [r.reason for r in parse_summary("Short one.").rejects] == ["too_short"]
    facts = parse_facts("Facts:\n- Hollin has 9,200 inhabitants.\n- The fair is in October.\n- ok")
    assert facts.items == ["Hollin has 9,200 inhabitants.", "The fair is in October."]
    assert [r.reason for r in facts.rejects] == ["too_short"]
    assert parse_facts("Hollin has 9,200 inhabitants.\nThe fair is in October.").items == [
        "Hollin has 9,200 inhabitants.", "The fair is in October."]
