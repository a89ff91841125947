"""Fact recall on hand-written cases: facts count, wording does not."""

from __future__ import annotations

import pytest

from graftlm.evaluate.facts import fact_recall, key_facts
from graftlm.evaluate.metrics import token_f1

COUNCIL = "The Lantern Council has 27 elected members."


def test_wrong_number_scores_zero_even_when_the_wording_matches() -> None:
    wrong = "The Lantern Council has 12 members."
    assert fact_recall(wrong, COUNCIL).score == 0.0
    assert fact_recall(wrong, COUNCIL, question="How many members does the Lantern Council have?").score == 0.0
    assert token_f1(wrong, COUNCIL) > 0.6  # the wording metric is fooled; fact recall is not


def test_exact_copy_and_paraphrase_with_the_right_facts_score_one() -> None:
    assert fact_recall(COUNCIL, COUNCIL).score == 1.0
    assert fact_recall("Twenty-seven people, all of them elected, sit on it.", COUNCIL).score == 1.0
    assert fact_recall("It has 27.", COUNCIL).score == 1.0


def test_numbers_units_and_separators_are_normalised() -> None:
    reference = "The line's track gauge is 1,067 millimetres."
    assert fact_recall("1067 mm", reference).score == 1.0
    assert fact_recall("1067 cm", reference).score == 0.0  # right number, wrong unit
    assert fact_recall("1076 mm", reference).score == 0.0
    assert fact_recall("It has four berths.", "There are 4 berths.").score == 1.0
    assert fact_recall("It cost $2 million.", "The price was 2,000,000 dollars.").score == 1.0


def test_dates_times_names_quotes_and_diacritics() -> None:
    reference = 'The "Copper Owl" first sailed from São Paulo on 12 March 1998 at 3 pm.'
    answer = "On March 12, 1998, at 15:00, the copper owl left Sao Paulo."
    facts = key_facts(reference)
    assert ("copper", "owl") in facts and ("__d1998_03_12__",) in facts and ("__t15_00__",) in facts
    assert fact_recall(answer, reference).score == 1.0
    assert fact_recall("On 12 March 1999 at 3 pm the Copper Owl sailed.", reference).score == pytest.approx(2 / 3)
    assert key_facts("It got 12 marks 1998 times.") == [("12",), ("1998",)]  # not a date in March
    assert key_facts("Independence Day is 12 May 1921.") == [("__d1921_05_12__",)]


def test_facts_given_in_the_question_are_not_asked_for() -> None:
    question = "Who founded the Lantern Council in 1998?"
    reference = "Ada Lovelace founded it in 1998."
    assert fact_recall("It was founded in 1998.", reference, question=question).score == 0.0
    result = fact_recall("Ada Lovelace did.", reference, question=question)
    assert result.score == 1.0 and result.facts == ("ada lovelace",) and result.basis == "key facts"


def test_keywords_replace_extraction() -> None:
    result = fact_recall("The owl is copper.", COUNCIL, keywords=["copper", "Owl"])
    assert result.basis == "keywords" and result.score == 1.0
    assert fact_recall("27 elected members", COUNCIL, keywords=["Brass"]).score == 0.0


def test_no_key_fact_falls_back_to_content_words_and_says_so() -> None:
    result = fact_recall("They are slow, and painted green.", "Ferries are usually slow and green.")
    assert result.basis == "content words"
    assert result.facts == ("ferries", "usually", "slow", "green") and result.score == 0.5
    assert result.missing == ("ferries", "usually")
