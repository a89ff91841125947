"""`run_eval` end to end: fake models and judge, then tiny real models for the log-likelihood evaluators."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from graftlm.config import recipe_from_dict
from graftlm.errors import InputError
from graftlm.evaluate.run import run_eval, select_items

from .eval_helpers import KNOWLEDGE_LEAF, SKILL_LEAF, make_generate_dir, read_lines

FAKE = {"teacher": {"model": "fake"}, "eval": {"mt_bench_questions": 3, "bootstrap_samples": 200}}


def test_fake_run_writes_scores_answers_and_manifest(generate_dir: Path, tmp_path: Path) -> None:
    out = run_eval("fake", generate_dir, tmp_path / "eval", recipe_from_dict(FAKE), base_model="fake")
    scores = json.loads((out / "scores.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["items"] == 15 and manifest["counts"]["mt_bench"] == 3
    assert (out / "manifest.json").stat().st_mtime_ns >= (out / "scores.json").stat().st_mtime_ns
    leaf = scores["leaves"][KNOWLEDGE_LEAF]
    assert set(leaf["evaluators"]) == {"fact_recall", "judge_correct", "judge_score", "token_f1", "rouge_l"}
    f1 = leaf["evaluators"]["token_f1"]
    for role in ("trained", "base"):
        assert f1[role]["n"] == 10 and len(f1[role]["ci"]) == 2
    # same fake model on both sides: no difference, and the report must say so
    assert f1["diff"]["diff"] == 0 and f1["diff"]["verdict"] == "not significant"
    assert leaf["verdict"]["answer"] == "not significant"
    assert scores["leaves"][SKILL_LEAF]["evaluators"]["judge_score"]["trained"]["judge_errors"] == 0
    assert scores["retention"]["mt_bench"]["trained"]["judged_turns"] == 6
    assert any("multiple choice" in s for s in scores["skipped"])

    rows = read_lines(out / "answers.jsonl")
    qa = [r for r in rows if r["evaluator"] in ("knowledge_qa", "skill_judged")]
    assert len(qa) == 15
    for r in qa:
        both = {"trained", "base"} | ({"open_book"} if r["evaluator"] == "knowledge_qa" else set())
        assert set(r["answers"]) == both and set(r["judgments"]) == both  # knowledge: base open-book too
        assert all(j["text"] for j in r["judgments"].values())
    mt = [r for r in rows if r["evaluator"] == "mt_bench"]
    assert len(mt) == 3 and all(len(r["answers"]["trained"]) == 2 for r in mt)


def test_rerun_after_a_crash_reads_every_answer_from_the_cache(generate_dir: Path, tmp_path: Path) -> None:
    recipe = recipe_from_dict(FAKE)
    out = run_eval("fake", generate_dir, tmp_path / "eval", recipe)
    first = (out / "scores.json").read_text()
    # a crash before the end: scores and manifest never written
    (out / "manifest.json").unlink()
    (out / "scores.json").unlink()
    caches = sorted((out / "cache").glob("*.sqlite"))
    assert caches
    before = {c: _calls(c) for c in caches}
    run_eval("fake", generate_dir, out, recipe)
    assert (out / "scores.json").read_text() == first
    for c in caches:
        new = _calls(c)[len(before[c]):]
        assert new and all(cached == 1 for (cached,) in new), "the rerun asked a model again"
    # complete with the same inputs: nothing is redone
    mtime = (out / "manifest.json").stat().st_mtime_ns
    run_eval("fake", generate_dir, out, recipe)
    assert (out / "manifest.json").stat().st_mtime_ns == mtime


def _calls(path: Path) -> list[tuple[int]]:
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT cached FROM calls ORDER BY id"))


def test_no_judge_scores_knowledge_judge_free_and_says_skills_were_not_judged(generate_dir: Path,
                                                                              tmp_path: Path) -> None:
    recipe = recipe_from_dict({**FAKE, "eval": {"use_judge": False, "mt_bench_questions": 3}})
    out = run_eval("fake", generate_dir, tmp_path / "eval", recipe)
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["leaves"][KNOWLEDGE_LEAF]["evaluators"]) == {"fact_recall", "token_f1", "rouge_l"}
    assert scores["leaves"][SKILL_LEAF]["verdict"]["answer"] == "not evaluated"
    assert "mt_bench" not in scores["retention"]
    assert any("use_judge" in s for s in scores["skipped"])


def test_bad_generate_dir_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no eval.jsonl") as e:
        run_eval("fake", tmp_path, tmp_path / "eval", recipe_from_dict(FAKE))
    assert "graft generate" in (e.value.hint or "")
    (tmp_path / "eval.jsonl").write_text('{"id": "x", "leaf": "l"}\n')
    with pytest.raises(InputError, match="missing or wrong field") as e2:
        run_eval("fake", tmp_path, tmp_path / "eval", recipe_from_dict(FAKE))
    assert e2.value.location is not None and e2.value.location.line == 1


def test_select_items_is_a_stable_per_leaf_subset(generate_dir: Path) -> None:
    from graftlm.evaluate.run import load_items

    items = load_items(generate_dir)
    a = select_items(items, 3, seed=1)
    assert [it.id for it in a] == [it.id for it in select_items(items, 3, seed=1)]
    per_leaf: dict[str, int] = {}
    for it in a:
        per_leaf[it.leaf] = per_leaf.get(it.leaf, 0) + 1
    assert max(per_leaf.values()) == 3 and len(per_leaf) == 3
    assert select_items(items, None, seed=1) == items


@pytest.fixture(scope="module")
def other_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from graftlm.testing.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-other"), seed=1)


def test_tiny_models_get_multiple_choice_and_drift(tiny_model: Path, other_tiny_model: Path, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(2)
    gen = make_generate_dir(tmp_path / "generate", knowledge=4, skills=2)
    recipe = recipe_from_dict({"teacher": {"model": "fake", "device": "cpu"}, "judge": {"model": "fake"},
                               "eval": {"max_new_tokens": 8, "mt_bench_questions": 2, "mc_questions_per_leaf": 6,
                                        "bootstrap_samples": 200}})
    out = run_eval(str(other_tiny_model), gen, tmp_path / "eval", recipe, base_model=str(tiny_model))
    scores = json.loads((out / "scores.json").read_text())
    assert scores["skipped"] == []
    mc = scores["leaves"][KNOWLEDGE_LEAF]["evaluators"]["multiple_choice"]
    assert mc["trained"]["n"] == 6 and 0 <= mc["trained"]["mean"] <= 1
    rows = [r for r in read_lines(out / "answers.jsonl") if r["evaluator"] == "multiple_choice"]
    assert len(rows) == 6
    for r in rows:
        res = r["results"]["trained"]
        assert len(res["logprobs"]) == 4 and res["chosen"] == max(range(4), key=lambda i: res["logprobs"][i])
        assert res["correct"] == float(res["chosen"] == r["answer"])
    drift = scores["retention"]["drift"]
    assert drift["texts"] == 16 and drift["kl"]["trained"]["mean"] > 0.001  # two different random models
    assert drift["nll"]["perplexity"]["base"] > 1

    same = run_eval(str(tiny_model), gen, tmp_path / "eval-same", recipe, base_model=str(tiny_model))
    kl_same = json.loads((same / "scores.json").read_text())["retention"]["drift"]["kl"]["trained"]["mean"]
    assert abs(kl_same) < 1e-6  # a model against itself has not drifted


def _results(judge_text: str, n: int = 6) -> list:
    from graftlm.evaluate.judge import parse_knowledge_judgment
    from graftlm.evaluate.qa import ItemResult
    from graftlm.records import EvalItem

    out = []
    for i in range(n):
        r = ItemResult(EvalItem(id=f"k{i}", leaf="k", leaf_type="knowledge", question=f"Q{i}?", answer=f"fact number {i}"))
        r.answers = {"trained": f"fact number {i}", "base": "no idea"}
        r.judgments = {role: parse_knowledge_judgment(judge_text) for role in r.answers}
        r.score_metrics()
        out.append(r)
    return out


def test_a_judge_that_cannot_follow_the_format_is_reported_and_not_trusted() -> None:
    from graftlm.evaluate.run import build_scores

    recipe = recipe_from_dict({"eval": {"bootstrap_samples": 200}})
    # 8 items: 6 no longer pass the Holm correction over the leaf's three judge-free comparisons
    scores = build_scores({"trained": "t", "base": "b"}, _results("I think it is fine.", n=8), [], [], [], {},
                          recipe, judged=True, skipped=[])
    leaf = scores["leaves"]["k"]
    judge = leaf["evaluators"]["judge_score"]
    assert judge["trained"]["judge_errors"] == 8 and judge["trained"]["judge_error_rate"] == 1.0
    assert judge["trained"]["mean"] is None and judge["trained"]["n"] == 0  # never counted as zeros
    assert leaf["verdict"]["metric"] == "fact_recall" and leaf["verdict"]["answer"] == "yes"
    assert leaf["verdict"]["text"].startswith("Yes, it learned: 0.00 -> 1.00")


def test_without_a_base_model_the_verdict_says_so() -> None:
    from graftlm.evaluate.run import build_scores

    recipe = recipe_from_dict({"eval": {"bootstrap_samples": 200}})
    scores = build_scores({"trained": "t"}, _results("Verdict: correct\nRating: [[8]]"), [], [], [], {}, recipe,
                          judged=True, skipped=[])
    leaf = scores["leaves"]["k"]
    assert "diff" not in leaf["evaluators"]["judge_correct"]
    assert leaf["verdict"]["answer"] == "no base model" and "Trained: 1.00" in leaf["verdict"]["text"]


def test_a_missing_judge_model_fails_before_any_answer(generate_dir: Path, tmp_path: Path) -> None:
    from graftlm.errors import ModelError

    recipe = recipe_from_dict({**FAKE, "judge": {"model": str(tmp_path / "no-such-judge")}})
    with pytest.raises(ModelError, match="model not found"):
        run_eval("fake", generate_dir, tmp_path / "eval", recipe)
    assert not (tmp_path / "eval").exists()


def test_a_knowledge_verdict_mentions_the_other_judge_free_evidence() -> None:
    from graftlm.evaluate.run import build_scores

    results = _results("I think it is fine.")
    for r in results:  # the trained model's answers are no better by F1 ...
        r.answers["trained"] = "no idea"
        r.score_metrics()
    mc_q = [{"question": type("Q", (), {"leaf": "k"})(), "results": {"base": {"correct": 0.0}, "trained": {"correct": 1.0}}}
            for _ in range(8)]  # ... but it picks the documents' facts in multiple choice
    recipe = recipe_from_dict({"eval": {"bootstrap_samples": 200}})
    scores = build_scores({"trained": "t", "base": "b"}, results, [], mc_q, [], {}, recipe, judged=True, skipped=[])
    v = scores["leaves"]["k"]["verdict"]
    assert v["metric"] == "fact_recall" and v["answer"] == "not significant"
    assert [a["metric"] for a in v["also"]] == ["multiple_choice"]
    assert v["also"][0]["verdict"] == "better" and "Also: multiple-choice accuracy" in v["text"]
    # 8 paired items, all better: of the 2^8 sign flips only all-up and all-down are as extreme.
    assert v["also"][0]["p_value"] == 2 / 256
