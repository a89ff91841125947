"""The one teacher protocol: chat messages and sampling options in, n completions with usage out.

Generation, judging and evaluation all talk to a teacher through this protocol only. Implementations:
`graftlm.teacher.http` (any OpenAI-compatible server, or a fleet of them), `graftlm.teacher.local`
(a transformers model in this process), `graftlm.teacher.fake` (deterministic, for tests and dry runs).
`graftlm.teacher.cache.CachedTeacher` wraps any of them with the SQLite call cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]
"""One chat message: {"role": "system"|"user"|"assistant", "content": str}."""


@dataclass(frozen=True)
class SamplingOptions:
    """Sampling options of one request (the OpenAI names and meanings)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None = None


@dataclass(frozen=True)
class ChatResult:
    """The answer to one request: `n` completions, token usage, and where it came from."""

    completions: tuple[Completion, ...]
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    latency_s: float = 0.0
    request_hash: str = ""
    cached: bool = False

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]


@runtime_checkable
class Teacher(Protocol):
    """Anything that answers chat requests. `model_id` names the model in manifests and cache keys."""

    model_id: str

    async def chat(self, messages: list[Message], options: SamplingOptions) -> ChatResult: ...

    async def aclose(self) -> None: ...
