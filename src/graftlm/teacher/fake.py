"""A deterministic in-process teacher for tests, benchmarks and dry runs (`--teacher fake`).

It answers each prompt through the responder functions its caller passes: each stage that has prompts
provides one (`graftlm.generate.fake_responses.respond`, `graftlm.evaluate.fake_responses.respond`),
which recognises its own prompts and returns a well-formed answer, or None to pass. Prompts no responder
recognises get a short generic answer. Answers depend only on (messages, options, sample index).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence

from graftlm.teacher.base import ChatResult, Completion, Message, SamplingOptions, Usage

Responder = Callable[[list[Message], SamplingOptions, int], "str | None"]

def generic_answer(messages: list[Message], index: int) -> str:
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:8]
    return f"This is a fake answer ({digest}, sample {index})."


class FakeTeacher:
    """Deterministic fake teacher answering through `responders` (tried in order; none: generic answers).
    `latency_s` simulates a slow server."""

    def __init__(self, responders: Sequence[Responder] = (), *, latency_s: float = 0.0,
                 model_id: str = "fake-teacher") -> None:
        self.responders = tuple(responders)
        self.latency_s = latency_s
        self.model_id = model_id
        self.calls = 0

    def answer(self, messages: list[Message], options: SamplingOptions, index: int) -> str:
        for respond in self.responders:
            text = respond(messages, options, index)
            if text is not None:
                return text
        return generic_answer(messages, index)

    async def chat(self, messages: list[Message], options: SamplingOptions) -> ChatResult:
        self.calls += 1
        start = time.perf_counter()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        texts = [self.answer(messages, options, i) for i in range(options.n)]
        prompt_tokens = sum(len(m.get("content", "").split()) for m in messages)
        return ChatResult(
            completions=tuple(Completion(t, "stop") for t in texts),
            usage=Usage(prompt_tokens, sum(len(t.split()) for t in texts)),
            model=self.model_id,
            latency_s=time.perf_counter() - start,
        )

    async def aclose(self) -> None:
        return None
