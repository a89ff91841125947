"""Judging by probabilities: a tiny real model taught one verdict is read as giving that verdict, in this
process and through `graft serve` over real HTTP; verdicts never come back unparsable."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from graftlm.judging import RATING_10, YES_NO, JudgeRequest, judge, judge_messages, read_choices
from graftlm.teacher.base import SamplingOptions, TokenPosition, choice_logprobs
from graftlm.templates import render

KNOWLEDGE = {"question": "How many members has the Lantern Council?", "reference": "It has 27 elected members.",
             "answer": "The Lantern Council has 12 members."}
SKILL = {"question": "Write a polite request to a neighbour.", "reference": "Dear neighbour, could you ...",
         "answer": "Hey, trim it.", "context": ""}
QUESTION = {"task": "Write polite requests.", "question": "Ask a neighbour to trim a hedge.", "context": None}
TEXT = SamplingOptions(max_tokens=8)


def teach(base: Path, out: Path, lessons: list[tuple[list[dict[str, str]], str]]) -> Path:
    """A copy of the tiny model trained a few steps to reply `reply` to each prompt (only the reply is
    trained on)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    rows = []
    for messages, reply in lessons:
        prompt = tok(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
                     add_special_tokens=False)["input_ids"]
        answer = tok(reply, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append((torch.tensor([prompt + answer]), torch.tensor([[-100] * len(prompt) + answer])))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        for ids, labels in rows:
            opt.zero_grad()
            model(input_ids=ids, labels=labels).loss.backward()
            opt.step()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def taught(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny models that say yes (and rate 10), or no (and rate 2), to the direct judge prompts."""
    k = judge_messages("judge_knowledge_answer", direct=True, **KNOWLEDGE)
    s = judge_messages("judge_skill", direct=True, **SKILL)
    q = render("judge_question", direct=True, **QUESTION)
    root = tmp_path_factory.mktemp("taught")
    return {"yes": teach(tiny_model, root / "yes", [(k, "yes"), (s, "10"), (q, "yes")]),
            "no": teach(tiny_model, root / "no", [(k, "no"), (s, "2"), (q, "no")])}


def _local(path: Path):  # type: ignore[no-untyped-def]
    from graftlm.config.teacher import TeacherConfig
    from graftlm.teacher.local import LocalTeacher

    return LocalTeacher.from_config(TeacherConfig(model=str(path), device="cpu", dtype="float32"))


async def _both(teacher) -> tuple:  # type: ignore[no-untyped-def]
    try:
        k = await judge(teacher, JudgeRequest("judge_knowledge_answer", "knowledge", KNOWLEDGE), TEXT, "probabilities")
        s = await judge(teacher, JudgeRequest("judge_skill", "rating", SKILL), TEXT, "probabilities")
    finally:
        await teacher.aclose()
    return k, s


def test_local_judge_reads_the_verdict_from_probabilities(taught: dict[str, Path]) -> None:
    yes_k, yes_s = asyncio.run(_both(_local(taught["yes"])))
    no_k, no_s = asyncio.run(_both(_local(taught["no"])))
    assert (yes_k.method, yes_k.error, no_k.error) == ("probabilities", None, None)
    assert yes_k.correct is True and yes_k.score is not None and yes_k.score > 8
    assert no_k.correct is False and no_k.score is not None and no_k.score < 3
    # "10" is two tokens for the tiny tokenizer ("1", "0"): read through the second position
    assert yes_s.score is not None and yes_s.score > 7 and yes_s.text.startswith("by probabilities: P(10)=")
    assert no_s.score is not None and no_s.score < 3.5


def test_generation_checks_questions_by_probabilities(taught: dict[str, Path]) -> None:
    from graftlm.generate.pool import RequestPool
    from graftlm.teacher.fake import FakeTeacher

    async def check(teacher) -> object:  # type: ignore[no-untyped-def]
        try:
            return await RequestPool(teacher, 2).choose(render("judge_question", direct=True, **QUESTION), YES_NO)
        finally:
            await teacher.aclose()

    yes, no = asyncio.run(check(_local(taught["yes"]))), asyncio.run(check(_local(taught["no"])))
    assert getattr(yes, "best", None) == "yes" and getattr(no, "best", None) == "no"
    assert asyncio.run(check(FakeTeacher())) is None  # no probabilities: generation parses the text verdict


@pytest.fixture(scope="module")
def served_yes(taught: dict[str, Path]) -> Iterator[str]:
    from graftlm.testing.server import ServerFailed, running_server

    try:
        with running_server(taught["yes"], ["--device", "cpu", "--dtype", "float32", "--threads", "1"],
                            env={"OMP_NUM_THREADS": "1"}) as base:
            yield base
    except ServerFailed as e:
        pytest.fail(str(e))


def test_http_judge_reads_logprobs_from_graft_serve(served_yes: str, taught: dict[str, Path]) -> None:
    import httpx

    from graftlm.teacher.http import HttpTeacher

    body = {"messages": judge_messages("judge_knowledge_answer", direct=True, **KNOWLEDGE), "max_tokens": 2,
            "temperature": 0, "logprobs": True, "top_logprobs": 5}
    raw = httpx.post(served_yes + "/v1/chat/completions", json=body, timeout=60).json()
    content = raw["choices"][0]["logprobs"]["content"]
    assert len(content) == 2 and len(content[0]["top_logprobs"]) == 5  # "yes" is "y" + "es" for the tiny tokenizer
    assert "".join(p["token"] for p in content) == "yes" and content[0]["logprob"] > math.log(0.5)
    assert content[0]["top_logprobs"][0]["token"] == "y"
    plain = httpx.post(served_yes + "/v1/chat/completions", json={**body, "logprobs": False}, timeout=60).json()
    assert plain["choices"][0]["logprobs"] is None

    k, s = asyncio.run(_both(HttpTeacher([served_yes + "/v1"], max_retries=0)))
    local_k, local_s = asyncio.run(_both(_local(taught["yes"])))
    assert (k.method, k.correct) == ("probabilities", True)
    assert k.score is not None and local_k.score is not None and abs(k.score - local_k.score) < 0.05
    assert s.score is not None and local_s.score is not None and abs(s.score - local_s.score) < 0.05


def test_a_server_without_logprobs_falls_back_to_text() -> None:
    from graftlm.evaluate import fake_responses
    from graftlm.teacher.fake import FakeTeacher

    fake = FakeTeacher([fake_responses.respond])  # no probabilities: the judgment is parsed from its text
    request = JudgeRequest("judge_knowledge_answer", "knowledge", KNOWLEDGE)
    j = asyncio.run(judge(fake, request, TEXT))
    assert j.method == "text" and j.correct is False
    strict = asyncio.run(judge(fake, request, TEXT, "probabilities"))
    assert strict.score is None and "no probabilities" in (strict.error or "")


def test_two_token_choices_share_the_first_tokens_probability() -> None:
    first = TokenPosition("1", math.log(0.6), (("1", math.log(0.6)), ("7", math.log(0.3)), ("yes", math.log(0.1))))
    second = TokenPosition("0", math.log(0.75), (("0", math.log(0.75)), ("\n", math.log(0.25))))
    lp = choice_logprobs([first, second], RATING_10.choices)
    assert math.exp(lp["10"]) == pytest.approx(0.45) and math.exp(lp["1"]) == pytest.approx(0.15)
    assert math.exp(lp["7"]) == pytest.approx(0.3) and lp["5"] == -math.inf
    verdict = read_choices(lp, RATING_10)
    assert verdict is not None and verdict.best == "10"
    assert verdict.expected == pytest.approx((0.45 * 10 + 0.15 * 1 + 0.3 * 7) / 0.9)
    assert read_choices({"maybe": 0.0}, YES_NO) is None
