"""The one teacher protocol: chat messages and sampling options in, n completions with usage out.

Generation, judging and evaluation all talk to a teacher through this protocol only. Implementations:
`graftlm.teacher.http` (any OpenAI-compatible server, or a fleet of them), `graftlm.teacher.local`
(a transformers model in this process), `graftlm.teacher.fake` (deterministic, for tests and dry runs).
`graftlm.teacher.cache.CachedTeacher` wraps any of them with the SQLite call cache.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    top_logprobs: int | None = None
    """Return the log-probabilities of this many most likely tokens at every generated position (None: no
    log-probabilities; OpenAI's `logprobs: true, top_logprobs: k`)."""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        if self.top_logprobs is None:  # requests without log-probabilities keep their cache keys
            del d["top_logprobs"]
        return d


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class TokenPosition:
    """One generated token and the most likely tokens at its position, with their log-probabilities."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None = None
    logprobs: tuple[TokenPosition, ...] = ()
    """Per generated token, when the request asked for `top_logprobs`."""


def _norm_token(token: str) -> str:
    return token.strip().lower()


def _alternatives(position: TokenPosition) -> dict[str, float]:
    """Log-probabilities by normalised token text (" Yes" and "yes" are one verdict)."""
    out: dict[str, float] = {}
    for token, lp in position.top:
        key = _norm_token(token)
        out[key] = lp if key not in out else _logaddexp(out[key], lp)
    return out


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi = max(a, b)
    return hi + math.log(math.exp(a - hi) + math.exp(b - hi))


def choice_logprobs(positions: Sequence[TokenPosition], choices: Sequence[str]) -> dict[str, float]:
    """log P(reply == choice) for short replies (yes/no, 1..10) from the top tokens at the first two
    generated positions. A choice that is one token is read at the first position; a choice that extends
    the token actually generated first ("10" after "1", on tokenizers that split digits) takes its share of
    that token's probability from the second position. Choices not among the reported tokens get -inf."""
    if not positions:
        return {c: -math.inf for c in choices}
    first = _alternatives(positions[0])
    out = {c: first.get(c, -math.inf) for c in choices}
    taken = _norm_token(positions[0].token)
    longer = [c for c in choices if len(c) > len(taken) and c.startswith(taken)] if taken else []
    if len(positions) > 1 and longer and taken in first:
        second = _alternatives(positions[1])
        base, share = first[taken], 0.0
        for c in longer:
            lp = second.get(c[len(taken):], -math.inf)
            out[c] = _logaddexp(out[c], base + lp)
            share += math.exp(lp)
        if taken in out:
            out[taken] = base + math.log(max(1.0 - share, 1e-12))
    return out


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
