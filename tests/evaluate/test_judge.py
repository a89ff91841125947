"""Judge prompts and the robust parsing of judgments."""

from __future__ import annotations

import pytest

from graftlm.evaluate import fake_responses
from graftlm.evaluate.qa import judge_request
from graftlm.judging import (
    JUDGE_SYSTEM,
    parse_knowledge_judgment,
    parse_rating,
    parse_score_judgment,
    parse_verdict,
)
from graftlm.records import EvalItem
from graftlm.teacher.base import SamplingOptions
from graftlm.templates import render_text as render


@pytest.mark.parametrize(("text", "expected"), [
    ("The answer is right.\nRating: [[7]]", 7),
    ("[[ 8 ]]", 8),
    ("Explanation first, it mentions 3 facts of 5.\nRating: [[6]]", 6),
    ("Good overall. Rating: 9", 9),
    ("Score: 4/10", 4),
    ("I would rate this 7/10.", 7),
    ("It deserves a 6 out of 10.", 6),
    ('{"explanation": "ok", "rating": 5}', 5),
    ('Here you go: {"score": "8"}', 8),
    ("**Rating:** 3", 3),
    ("Rating: [7]", 7),
    ("  10  ", 10),
    ("Rating: 7.5", 7.5),
    ("First I thought [[3]], but on reflection [[5]]", 5),
    ("The score on the test was 45. Overall 7/10.", 7),
])
def test_parse_rating_accepts_common_formats(text: str, expected: float) -> None:
    assert parse_rating(text) == expected


@pytest.mark.parametrize("text", [
    "", "   ", "The answer is fine.", "Rating: [[11]]", "Rating: [[0]]", "I give it a thumbs up",
    "Rating: 85%", '{"rating": true}',
])
def test_parse_rating_rejects_unparsable_and_out_of_range(text: str) -> None:
    assert parse_rating(text) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("It matches.\nVerdict: correct\nRating: [[9]]", True),
    ("Verdict: incorrect", False),
    ("Verdict: **Incorrect**", False),
    ("verdict - not correct", False),
    ('{"correct": false, "rating": 2}', False),
    ('{"verdict": "correct"}', True),
    ("The facts differ.\nINCORRECT", False),
    ("The facts agree.\nCorrect.", True),
    ("The answer is correct but incomplete.", None),
    ("", None),
])
def test_parse_verdict(text: str, expected: bool | None) -> None:
    assert parse_verdict(text) is expected


def test_knowledge_judgment_names_what_is_missing() -> None:
    full = parse_knowledge_judgment("Same fact.\nVerdict: correct\nRating: [[9]]")
    assert (full.correct, full.score, full.error) == (True, 9, None)
    half = parse_knowledge_judgment("Rating: [[4]]")
    assert half.score == 4 and half.correct is None and half.error == "no verdict found"
    none = parse_knowledge_judgment("no idea")
    assert none.score is None and none.correct is None and "verdict" in (none.error or "") and "rating" in (none.error or "")
    assert parse_score_judgment("meh").error == "no 1..10 rating found"


def test_templates_render_every_value_and_refuse_missing_ones() -> None:
    text = render("judge_knowledge_answer", question="Q?", reference="REF", answer="ANS")
    assert "Q?" in text and "REF" in text and "ANS" in text and "[[5]]" in text
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render("judge_knowledge_answer", question="Q?", reference="REF")


def test_skill_prompt_carries_context_of_grounded_items() -> None:
    item = EvalItem(id="g", leaf="l", leaf_type="grounded_skill", question="Summarise.", answer="Short.",
                    context="A long PASSAGE.")
    prompt = judge_request(item, "my summary")[1]["content"]
    assert "A long PASSAGE." in prompt and "Summarise." in prompt and "my summary" in prompt


def test_fake_judge_scores_by_overlap_in_all_formats() -> None:
    item = EvalItem(id="k", leaf="l", leaf_type="knowledge", question="What is the capital of Vescary?",
                    answer="The capital of Vescary is Port Anselm.")
    opts = SamplingOptions()
    seen_formats = set()
    for i, (answer, correct) in enumerate([("The capital of Vescary is Port Anselm.", True),
                                           ("Port Anselm is the capital of Vescary.", True),
                                           ("I do not know.", False), ("Grellby, I think.", False),
                                           ("It is Port Anselm, the capital.", True)]):
        msgs = judge_request(item, answer)
        assert msgs[0]["content"] == JUDGE_SYSTEM
        text = fake_responses.respond(msgs, opts, i)
        assert text is not None
        seen_formats.add(text.strip()[0])
        j = parse_knowledge_judgment(text)
        assert j.error is None, text
        assert j.correct is correct
        assert j.score is not None and (j.score >= 6) is correct
    assert fake_responses.respond([{"role": "user", "content": "hello"}], opts, 0) is None
    bad = fake_responses.respond(judge_request(item, f"x {fake_responses.UNJUDGEABLE}"), opts, 0)
    assert bad is not None and parse_knowledge_judgment(bad).score is None


def test_close_rating_restores_what_the_stop_string_cut() -> None:
    from graftlm.judging import JUDGE_STOP, close_rating

    assert JUDGE_STOP == ("]]",)
    assert parse_rating(close_rating("Good.\nRating: [[7")) == 7
    assert close_rating("Rating: [[ 8.5 ") == "Rating: [[ 8.5 ]]"
    assert close_rating("No rating here") == "No rating here"
    assert close_rating("Rating: [[7]]") == "Rating: [[7]]"
