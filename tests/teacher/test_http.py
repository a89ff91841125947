"""HttpTeacher against pytest-httpx, which fails the test on any request nobody registered."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from graftlm.config.teacher import TeacherConfig
from graftlm.errors import TeacherError
from graftlm.teacher.base import SamplingOptions
from graftlm.teacher.http import HttpTeacher, normalize_url, parse_retry_after

URL = "http://teacher.test/v1"
CHAT = URL + "/chat/completions"
MSGS = [{"role": "user", "content": "Name a colour."}]


def answer(texts: list[str], prompt_tokens: int = 7, completion_tokens: int = 3) -> dict[str, Any]:
    return {
        "model": "m",
        "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                    for i, t in enumerate(texts)],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def make(**kw: Any) -> HttpTeacher:
    fields: dict[str, Any] = {"model": URL, "model_name": "m", "backoff_base_s": 0.01, "backoff_max_s": 0.05,
                              "max_retries": 3, "api_key_env": "GRAFT_TEST_KEY"}
    fields.update(kw)
    return HttpTeacher.from_config(TeacherConfig(**fields))


def run(teacher: HttpTeacher, coro_fn: Any) -> Any:
    async def main() -> Any:
        try:
            return await coro_fn(teacher)
        finally:
            await teacher.aclose()

    return asyncio.run(main())


def chat(teacher: HttpTeacher, options: SamplingOptions | None = None) -> Any:
    return run(teacher, lambda t: t.chat(MSGS, options or SamplingOptions()))


def test_chat_sends_openai_body_and_sums_usage(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=CHAT, method="POST", json=answer(["red", "blue"], 7, 4))
    httpx_mock.add_response(url=CHAT, method="POST", json=answer(["green"], 5, 2))
    teacher = make()

    async def two(t: HttpTeacher) -> Any:
        a = await t.chat(MSGS, SamplingOptions(n=2, temperature=0.7, max_tokens=20, stop=("\n",), seed=3))
        b = await t.chat(MSGS, SamplingOptions())
        return a, b

    a, b = run(teacher, two)
    assert a.texts == ["red", "blue"] and b.texts == ["green"]
    assert (teacher.usage.prompt_tokens, teacher.usage.completion_tokens) == (12, 6)
    assert teacher.requests == 2
    body = json.loads(httpx_mock.get_requests()[0].content)
    assert body == {"model": "m", "messages": MSGS, "temperature": 0.7, "top_p": 1.0, "max_tokens": 20, "n": 2,
                    "stop": ["\n"], "seed": 3}


def test_model_name_comes_from_v1_models_once(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL + "/models", method="GET", json={"data": [{"id": "served-model"}]})
    httpx_mock.add_response(url=CHAT, method="POST", json=answer(["x"]), is_reusable=True)
    teacher = make(model_name=None)

    async def three(t: HttpTeacher) -> Any:
        return await asyncio.gather(*[t.chat(MSGS, SamplingOptions()) for _ in range(3)])

    run(teacher, three)
    models_calls = [r for r in httpx_mock.get_requests() if r.url.path.endswith("/models")]
    assert len(models_calls) == 1
    assert all(json.loads(r.content)["model"] == "served-model" for r in httpx_mock.get_requests(method="POST"))


@pytest.mark.parametrize("failure", ["500", "503", "429", "connect", "timeout"])
def test_transient_failures_are_retried(httpx_mock: HTTPXMock, failure: str) -> None:
    for _ in range(2):
        if failure == "connect":
            httpx_mock.add_exception(httpx.ConnectError("refused"), url=CHAT)
        elif failure == "timeout":
            httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=CHAT)
        else:
            httpx_mock.add_response(url=CHAT, status_code=int(failure), json={"error": {"message": "busy"}})
    httpx_mock.add_response(url=CHAT, json=answer(["ok"]))
    teacher = make()
    assert chat(teacher).texts == ["ok"]
    assert teacher.retries == 2
    assert len(httpx_mock.get_requests()) == 3


def test_gives_up_after_max_retries_with_clear_error(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=CHAT, status_code=502, text="bad gateway", is_reusable=True)
    teacher = make(max_retries=2)
    with pytest.raises(TeacherError) as err:
        chat(teacher)
    assert "after 3 attempts" in err.value.message and "HTTP 502" in err.value.message
    assert err.value.hint and "max_retries" in err.value.hint
    assert len(httpx_mock.get_requests()) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    monkeypatch.delenv("GRAFT_TEST_KEY", raising=False)
    httpx_mock.add_response(url=CHAT, status_code=status, json={"error": {"message": "nope", "type": "x"}})
    teacher = make()
    with pytest.raises(TeacherError) as err:
        chat(teacher)
    assert len(httpx_mock.get_requests()) == 1
    assert f"HTTP {status}" in err.value.message and "nope" in err.value.message
    if status in (401, 403):  # no key in the environment: say so
        assert "export GRAFT_TEST_KEY=<key>" in (err.value.hint or "")


def test_rejected_key_names_the_variable(httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_TEST_KEY", "wrong")
    httpx_mock.add_response(url=CHAT, status_code=401, json={"error": {"message": "bad key"}})
    with pytest.raises(TeacherError) as err:
        chat(make())
    assert "check the API key in $GRAFT_TEST_KEY" in (err.value.hint or "")


def test_retry_after_is_honoured(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=CHAT, status_code=429, headers={"Retry-After": "0.3"})
    httpx_mock.add_response(url=CHAT, json=answer(["ok"]))
    teacher = make(backoff_max_s=5.0)
    start = time.monotonic()
    assert chat(teacher).texts == ["ok"]
    assert time.monotonic() - start >= 0.3


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    teacher = HttpTeacher([URL], model_name="m", backoff_base_s=0.5, backoff_max_s=8.0)
    for attempt in range(12):
        ceiling = min(8.0, 0.5 * 2 ** attempt)
        delays = [teacher.backoff_delay(attempt, None) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jitter
    assert teacher.backoff_delay(0, 3.0) == 3.0
    assert teacher.backoff_delay(0, 600.0) == 8.0  # Retry-After is capped too
    asyncio.run(teacher.aclose())


def test_retry_after_header_parsing() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert normalize_url("http://h:1") == "http://h:1/v1" and normalize_url("http://h:1/v1/") == "http://h:1/v1"


def test_api_key_is_sent_but_never_logged(httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-very-secret-1234567890"
    monkeypatch.setenv("GRAFT_TEST_KEY", secret)
    httpx_mock.add_response(url=CHAT, status_code=500, json={"error": {"message": "oops"}})
    httpx_mock.add_response(url=CHAT, status_code=401, json={"error": {"message": "invalid key"}})
    caplog.set_level(logging.DEBUG)
    teacher = make()
    with pytest.raises(TeacherError) as err:
        chat(teacher)
    assert all(r.headers["authorization"] == f"Bearer {secret}" for r in httpx_mock.get_requests())
    assert "retry 1/3" in caplog.text  # the retry was logged ...
    assert secret not in caplog.text  # ... without the key
    assert secret not in str(err.value) and secret not in repr(teacher.__dict__.get("api_key_env"))


def test_requests_spread_over_endpoints(httpx_mock: HTTPXMock) -> None:
    urls = ["http://a.test/v1", "http://b.test/v1"]
    for u in urls:
        httpx_mock.add_response(url=u + "/chat/completions", json=answer(["x"]), is_reusable=True)
    teacher = make(model=",".join(urls), balance="round_robin")

    async def many(t: HttpTeacher) -> Any:
        return await asyncio.gather(*[t.chat(MSGS, SamplingOptions()) for _ in range(10)])

    run(teacher, many)
    hosts = [r.url.host for r in httpx_mock.get_requests()]
    assert hosts.count("a.test") == 5 and hosts.count("b.test") == 5


def test_endpoint_in_backoff_is_skipped(httpx_mock: HTTPXMock) -> None:
    urls = ["http://a.test/v1", "http://b.test/v1"]
    httpx_mock.add_response(url=urls[0] + "/chat/completions", status_code=503, headers={"Retry-After": "30"})
    httpx_mock.add_response(url=urls[1] + "/chat/completions", json=answer(["x"]), is_reusable=True)
    teacher = make(model=",".join(urls), backoff_max_s=30.0, max_in_flight=1)

    async def many(t: HttpTeacher) -> Any:
        return [await t.chat(MSGS, SamplingOptions()) for _ in range(6)]

    start = time.monotonic()
    run(teacher, many)
    assert time.monotonic() - start < 5  # nobody waited out a's 30 s back-off
    hosts = [r.url.host for r in httpx_mock.get_requests()]
    assert hosts.count("a.test") == 1 and hosts.count("b.test") == 6


def test_least_in_flight_prefers_idle_endpoint() -> None:
    teacher = HttpTeacher(["http://a.test/v1", "http://b.test/v1"], model_name="m")
    teacher.endpoints[0].in_flight = 3
    assert {teacher.pick().url for _ in range(4)} == {"http://b.test/v1"}
    asyncio.run(teacher.aclose())


def test_completions_mode_renders_prompt_locally(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL + "/completions", json={
        "choices": [{"index": 0, "text": "Blue.", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2}})
    teacher = make(use_completions=True)
    result = chat(teacher)
    assert result.texts == ["Blue."] and teacher.usage.completion_tokens == 2
    body = json.loads(httpx_mock.get_requests()[0].content)
    assert body["prompt"] == "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"
    assert "messages" not in body


def test_malformed_answers_are_clear_errors(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=CHAT, json={"choices": [{"index": 0}]})
    httpx_mock.add_response(url=CHAT, json=answer(["only one"]))
    with pytest.raises(TeacherError, match="not an OpenAI completion"):
        chat(make())
    with pytest.raises(TeacherError, match="n=2"):
        chat(make(), SamplingOptions(n=2))

