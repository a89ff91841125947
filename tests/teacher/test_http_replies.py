"""HttpTeacher against a real HTTP server on loopback that replies badly or slowly: every bad reply is a
TeacherError naming the field and the endpoint, and `teacher.timeout_s` bounds a whole attempt."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from graftlm.config.teacher import TeacherConfig
from graftlm.errors import TeacherError
from graftlm.teacher.base import SamplingOptions
from graftlm.teacher.http import HttpTeacher
from graftlm.testing.http import Received, Reply, scripted_server

MSGS = [{"role": "user", "content": "Name a colour."}]


def good(content: Any = "red", usage: Any = None) -> dict[str, Any]:
    return {"model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                       "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 1} if usage is None else usage}


def ask(url: str, **kw: Any) -> Any:
    teacher = HttpTeacher.from_config(TeacherConfig(model=url, model_name="m", max_retries=0, api_key_env=None, **kw))

    async def main() -> Any:
        try:
            return await teacher.chat(MSGS, SamplingOptions())
        finally:
            await teacher.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize(("body", "field"), [
    (good(content=12345), "choices[0].message.content must be text or null, not int"),
    (good(content=["a", "list"]), "choices[0].message.content must be text or null, not list"),
    (good(usage="lots"), "usage must be an object of token counts, not str"),
    (good(usage={"prompt_tokens": "4", "completion_tokens": 1}), "usage.prompt_tokens must be a whole number"),
    (good(usage={"prompt_tokens": 4, "completion_tokens": 1.5}), "usage.completion_tokens must be a whole number"),
    ({"choices": {"0": {"message": {"content": "red"}}}}, "choices must be a list, not dict"),
    ({"choices": ["red"]}, "choices[0] must be an object, not str"),
    ([1, 2, 3], "the reply must be a JSON object, not list"),
])
def test_malformed_replies_name_the_field_and_the_endpoint(body: Any, field: str) -> None:
    with scripted_server(lambda req, reply: reply.json(body)) as (url, received), pytest.raises(TeacherError) as e:
        ask(url)
    assert field in e.value.message
    assert f"{url}/v1/chat/completions" in e.value.message
    assert len(received) == 1  # a malformed reply is a server bug: not retried


def test_null_content_is_an_empty_answer() -> None:
    with scripted_server(lambda req, reply: reply.json(good(content=None))) as (url, _):
        result = ask(url)
    assert result.texts == [""] and result.usage.prompt_tokens == 4


def test_timeout_is_a_deadline_for_the_whole_request_not_each_read() -> None:
    stop, finished = threading.Event(), threading.Event()
    body = json.dumps(good()).encode()
    sent: list[int] = []

    def dribble(req: Received, reply: Reply) -> None:
        # one byte every 0.2 s: each read is well within the 1 s timeout, the whole body takes 20 s and more
        sent.append(reply.dribble(body, 0.2, stop))
        finished.set()

    with scripted_server(dribble) as (url, received):
        try:
            with pytest.raises(TeacherError) as e:
                ask(url, timeout_s=1.0)
        finally:
            stop.set()
        assert finished.wait(30)
    assert "timed out after 1 s" in e.value.message
    assert sent[0] < len(body)  # the client gave up before the server had sent the reply
    assert len(received) == 1
