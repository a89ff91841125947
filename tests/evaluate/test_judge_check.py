"""A judge's accuracy is measured before use; MT-Bench counts only fully judged questions."""

from __future__ import annotations

import asyncio

from graftlm.config import recipe_from_dict
from graftlm.config.evaluate import EvalConfig
from graftlm.evaluate import fake_responses
from graftlm.evaluate.judge_check import labelled_set, measure
from graftlm.evaluate.run import build_scores, mt_bench_entry
from graftlm.judging import parse_score_judgment
from graftlm.teacher.fake import FakeTeacher

DOC = ("The Lantern Council has 27 elected members. It meets in Port Anselm every March. "
       "The council was founded in 1821 by Mara Quill. Its budget is 4 million crowns a year.")


def test_labelled_set_pairs_each_sentence_with_a_swapped_copy() -> None:
    cases = labelled_set({"leaf": [DOC]}, 6, seed=1)
    assert len(cases) == 6 and sum(c.correct for c in cases) == 3
    for right, wrong in zip(cases[::2], cases[1::2], strict=True):
        assert right.request.values["reference"] == wrong.request.values["reference"]
        assert {right.correct, wrong.correct} == {True, False}
        swapped = wrong if not wrong.correct else right
        assert swapped.request.values["answer"] != swapped.request.values["reference"]
    assert labelled_set({"leaf": ["no facts here at all, only words."]}, 6, seed=1) == []


def test_a_judge_that_always_says_correct_is_unreliable_and_decides_nothing() -> None:
    cfg = EvalConfig()
    cases = labelled_set({"leaf": [DOC]}, 8, seed=1)
    yes_man = FakeTeacher([lambda m, o, i: "Looks right.\nVerdict: correct\nRating: [[9]]"])
    check = asyncio.run(measure(yes_man, cases, cfg, 4))
    assert (check["accuracy"], check["reliable"], check["items"]) == (0.5, False, 8)
    fair = asyncio.run(measure(FakeTeacher([fake_responses.respond]), cases, cfg, 4))  # the fake judge notices swapped facts
    assert fair["accuracy"] == 1.0 and fair["reliable"] is True

    from graftlm.evaluate.qa import ItemResult
    from graftlm.records import EvalItem

    results = []
    for i in range(8):  # a skill leaf: decided by the judge's rating
        r = ItemResult(EvalItem(id=f"s{i}", leaf="s", leaf_type="freeform_skill", question=f"Q{i}?", answer="A."))
        r.answers = {"trained": "good", "base": "bad"}
        r.judgments = {"trained": parse_score_judgment("Rating: [[9]]"), "base": parse_score_judgment("Rating: [[2]]")}
        results.append(r)
    recipe = recipe_from_dict({"eval": {"bootstrap_samples": 200}})
    trusted = build_scores({"trained": "t", "base": "b"}, results, [], [], [], {}, recipe, judged=True, skipped=[],
                           judge_accuracy=fair)
    assert trusted["leaves"]["s"]["verdict"]["metric"] == "judge_score"
    distrusted = build_scores({"trained": "t", "base": "b"}, results, [], [], [], {}, recipe, judged=True,
                              skipped=[], judge_accuracy=check)
    leaf = distrusted["leaves"]["s"]
    assert leaf["evaluators"]["judge_score"]["unreliable"] is True and distrusted["judge_accuracy"]["reliable"] is False
    assert leaf["verdict"]["metric"] is None and "accuracy check" in leaf["verdict"]["text"]


def _row(trained: list[str | None], base: list[str | None]) -> dict:
    def js(texts: list[str | None]) -> list:
        return [None if t is None else parse_score_judgment(t) for t in texts]

    return {"question": {"turns": ["a", "b"]}, "answers": {"trained": ["x", "y"], "base": ["x", "y"]},
            "judgments": {"trained": js(trained), "base": js(base)}}


def test_mt_bench_counts_a_question_only_when_both_turns_were_judged() -> None:
    rows = [_row(["[[8]]", "[[6]]"], ["[[5]]", "[[5]]"]) for _ in range(12)]
    rows.append(_row(["[[2]]", "no rating"], ["[[5]]", "[[5]]"]))
    entry = mt_bench_entry(rows, ["trained", "base"], n_boot=200, seed=0)
    assert entry["trained"]["questions_counted"] == 12 and entry["trained"]["mean"] == 7.0  # not (2+...)/..
    assert entry["trained"]["judge_error_rate"] == 1 / 26 and "withheld" not in entry
    rows += [_row(["none", "[[6]]"], ["[[5]]", "[[5]]"]) for _ in range(2)]  # 3 of 30 turns failed: 10%
    assert "withheld" not in mt_bench_entry(rows, ["trained", "base"], n_boot=200, seed=0)
    rows.append(_row([None, "[[6]]"], ["[[5]]", "[[5]]"]))  # 4 of 32: over 10%
    withheld = mt_bench_entry(rows, ["trained", "base"], n_boot=200, seed=0)
    assert withheld["diff"]["verdict"] == "withheld" and "over 10%" in withheld["withheld"]
    assert mt_bench_entry(rows[:5], ["trained", "base"], n_boot=200, seed=0, unreliable=True)["withheld"].startswith(
        "the judge is unreliable")
