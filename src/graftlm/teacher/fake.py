"""A deterministic in-process teacher for tests, benchmarks and dry runs (`--teacher fake`).

It answers each prompt through responder functions: each stage that has prompts provides one
(`graftlm.generate.fake_responses.respond`, `graftlm.evaluate.fake_responses.respond`), which
recognises its own prompts and returns a well-formed answer, or None to pass. Unrecognised prompts
get a short generic answer. Answers depend only on (messages, options, sample index).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import time
from collections.abc import Callable

from graftlm.teacher.base import ChatResult, Completion, Message, SamplingOptions, Usage

Responder = Callable[[list[Message], SamplingOptions, int], "str | None"]

RESPONDER_MODULES = ("graftlm.generate.fake_responses", "graftlm.evaluate.fake_responses")


def default_responders() -> list[Responder]:
    out: list[Responder] = []
    for name in RESPONDER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        out.append(module.respond)
    return out


def generic_answer(messages: list[Message], index: int) -> str:
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:8]
    return f"This is a fake answer ({digest}, sample {index})."


class FakeTeacher:
    """Deterministic fake teacher. `latency_s` simulates a slow server; `fail_every` makes every k-th
    call raise (to test retries and fault handling)."""

    def __init__(self, responders: list[Responder] | None = None, *, latency_s: float = 0.0,
                 model_id: str = "fake-teacher") -> None:
        self.responders = default_responders() if responders is None else responders
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
