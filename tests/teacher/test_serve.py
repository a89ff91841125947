"""`graft serve` on the tiny model as a real subprocess, driven by HttpTeacher over real HTTP."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graftlm.errors import TeacherError
from graftlm.teacher.base import SamplingOptions
from graftlm.teacher.http import HttpTeacher
from graftlm.testing.server import ServerFailed, running_server

KEY = "serve-test-key-4242"


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    args = ["--api-key-env", "GRAFT_SERVE_KEY", "--max-body-bytes", "60000", "--device", "cpu", "--dtype", "float32",
            "--threads", "1"]
    try:
        with running_server(tiny_model, args, env={"GRAFT_SERVE_KEY": KEY, "OMP_NUM_THREADS": "2"}, log=log) as base:
            yield base
    except ServerFailed as e:
        pytest.fail(str(e))

def client(base: str, key: str | None = KEY, **kw: Any) -> HttpTeacher:
    return HttpTeacher([base + "/v1"], api_key=key, api_key_env="GRAFT_SERVE_KEY", max_retries=0, **kw)


def test_concurrent_chat_over_http_is_batched(server: str, tiny_model: Path) -> None:
    teacher = client(server)  # no model name: asks /v1/models
    before = httpx.get(server + "/health").json()

    async def work() -> Any:
        try:
            return await asyncio.gather(*[
                teacher.chat([{"role": "user", "content": f"Tell me fact {i}."}],
                             SamplingOptions(max_tokens=8, n=2, temperature=0.9, seed=i)) for i in range(16)])
        finally:
            await teacher.aclose()

    results = asyncio.run(work())
    assert teacher.model_name == tiny_model.name  # resolved from /v1/models
    assert all(len(r.completions) == 2 and r.usage.completion_tokens > 0 for r in results)
    assert teacher.usage.completion_tokens == sum(r.usage.completion_tokens for r in results)
    after = httpx.get(server + "/health").json()
    assert after["rows"] - before["rows"] == 32
    assert after["generate_calls"] - before["generate_calls"] < 16  # requests shared generate calls


def test_models_endpoint_and_seeded_answers(server: str, tiny_model: Path) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    models = httpx.get(server + "/v1/models", headers=headers).json()
    assert models["object"] == "list" and models["data"][0]["id"] == tiny_model.name
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "temperature": 1.0, "seed": 7,
            "stop": "zzz"}
    a = httpx.post(server + "/v1/chat/completions", json=body, headers=headers).json()
    b = httpx.post(server + "/v1/chat/completions", json=body, headers=headers).json()
    assert a["object"] == "chat.completion" and a["choices"][0]["message"]["role"] == "assistant"
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
    assert a["usage"]["total_tokens"] == a["usage"]["prompt_tokens"] + a["usage"]["completion_tokens"]


def test_one_client_in_several_event_loops(server: str) -> None:
    teacher = client(server, model_name="x")
    ask = [{"role": "user", "content": "hi"}]
    first = asyncio.run(teacher.chat(ask, SamplingOptions(max_tokens=3)))
    second = asyncio.run(teacher.chat(ask, SamplingOptions(max_tokens=3)))  # the first loop is closed now
    assert first.texts == second.texts
    asyncio.run(teacher.aclose())


def test_wrong_or_missing_key_gets_401(server: str) -> None:
    r = httpx.get(server + "/v1/models")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    teacher = client(server, key="wrong-key", model_name="x")

    async def ask() -> None:
        try:
            await teacher.chat([{"role": "user", "content": "hi"}], SamplingOptions(max_tokens=2))
        finally:
            await teacher.aclose()

    with pytest.raises(TeacherError) as err:
        asyncio.run(ask())
    assert "HTTP 401" in err.value.message and "$GRAFT_SERVE_KEY" in (err.value.hint or "")


def test_bad_requests_get_openai_shaped_400(server: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    url = server + "/v1/chat/completions"
    too_big = httpx.post(url, json={"messages": [{"role": "user", "content": "x" * 70000}]}, headers=headers)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"
    # About 3,000 tokens of distinct words: fits the body limit but not the 2,048-token context.
    long_prompt = " ".join(f"w{i}" for i in range(6000))
    over = httpx.post(url, json={"messages": [{"role": "user", "content": long_prompt}]}, headers=headers)
    assert over.status_code == 400 and over.json()["error"]["code"] == "context_length_exceeded"
    assert "context of 2048 tokens" in over.json()["error"]["message"]
    invalid = httpx.post(url, json={"messages": [], "n": 1}, headers=headers)
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "messages"
    not_json = httpx.post(url, content=b"{", headers=headers)
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]["message"]
    bad_temp = httpx.post(url, json={"messages": [{"role": "user", "content": "a"}], "temperature": 9}, headers=headers)
    assert bad_temp.status_code == 400 and bad_temp.json()["error"]["param"] == "temperature"


def test_serve_refuses_missing_key_variable(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from graftlm.cli import main

    env_name = "GRAFT_SURELY_UNSET_VAR"
    os.environ.pop(env_name, None)
    assert main(["serve", str(tiny_model), "--api-key-env", env_name]) == 2
    assert f"${env_name} is not set" in capsys.readouterr().err
