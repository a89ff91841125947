"""Getting answers from evaluated models and judgments from judges, through the teacher protocol.

Every model answers through a teacher (`make_teacher`), wrapped in the SQLite call cache, so an
interrupted evaluation resumes without asking a question twice. The cache file is keyed by a fingerprint
of the model (its weights, or for a server the served model id and a probe answer), so a checkpoint
retrained in place or another model behind the same URL never reuses stale answers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from graftlm.artifacts import hash_obj
from graftlm.config.model_spec import ModelSpec
from graftlm.config.teacher import TeacherConfig
from graftlm.teacher.base import Message, SamplingOptions, Teacher

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_local(spec: str) -> bool:
    """True for specs loaded in this process (default, folders, GGUF), False for `fake` and HTTP URLs."""
    return ModelSpec(spec).is_local


PROBE: list[Message] = [{"role": "user", "content": "Complete the sequence with five more words: red, green, blue,"}]
"""The fixed question whose greedy answer tells two models behind one URL apart."""


def fingerprint(config: TeacherConfig) -> str:
    """A short hash that changes when the model behind `config.model` changes: config and weight files'
    names, sizes and modification times for local models; for HTTP the served model ids (`/v1/models`)
    and the greedy answer to a fixed probe (with its token log-probabilities, rounded, where the server
    reports them), never the URL (a server restarted with another model behind
    the same URL must not reuse cached answers); the spec for `fake`."""
    spec = config.model.strip()
    if spec == "fake":
        return hash_obj(["fake", spec])[:16]
    if not is_local(spec):
        return _served_fingerprint(config)
    from graftlm.models import resolve

    ref = resolve(spec)
    path = ref.path
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    stats = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in files]
    return hash_obj([str(path), stats])[:16]


def _served_fingerprint(config: TeacherConfig) -> str:
    from graftlm.teacher.http import HttpTeacher, parse_logprobs

    async def probe() -> list[Any]:
        teacher = HttpTeacher.from_config(config)
        try:
            listed = await teacher.request("GET", "/models")
            ids = sorted(str(m.get("id")) for m in (listed.get("data") or []) if isinstance(m, dict))
            body = {"model": await teacher.resolve_model(), "messages": PROBE, "temperature": 0.0, "max_tokens": 16,
                    "seed": 0, "logprobs": True}
            data = await teacher.request("POST", "/chat/completions", json=body)
            answer = str((data.get("choices") or [{}])[0].get("message", {}).get("content") or "")
            logprobs = [round(p.logprob, 1) for p in parse_logprobs(data) or []]  # when the server reports them
            return [ids, config.model_name, answer, logprobs]
        finally:
            await teacher.aclose()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # callers may be inside an event loop
        return hash_obj(["served", pool.submit(asyncio.run, probe()).result()])[:16]


def open_teacher(config: TeacherConfig, cache_dir: Path | None) -> Teacher:
    """A teacher for `config` with the call cache in `cache_dir/<fingerprint>.sqlite` (None: uncached);
    `fake` answers evaluation's judge prompts."""
    from graftlm.evaluate.fake_responses import respond
    from graftlm.teacher.factory import make_teacher

    cache = cache_dir / f"{fingerprint(config)}.sqlite" if cache_dir is not None else None
    return make_teacher(config, cache_path=cache, responders=[respond])


async def gather_limited(factories: Sequence[Callable[[], Awaitable[T]]], limit: int,
                         desc: str = "") -> list[T]:
    """Run coroutine factories with at most `limit` in flight, in order of results, with a progress bar."""
    from tqdm import tqdm

    sem = asyncio.Semaphore(max(1, limit))
    bar = tqdm(total=len(factories), desc=desc, unit="req", leave=False, disable=not factories or None)

    async def one(f: Callable[[], Awaitable[T]]) -> T:
        async with sem:
            out = await f()
        bar.update(1)
        return out

    try:
        return list(await asyncio.gather(*(one(f) for f in factories)))
    finally:
        bar.close()


async def ask(teacher: Teacher, messages: list[Message], options: SamplingOptions) -> str:
    """The first completion's text of one request."""
    result = await teacher.chat(messages, options)
    return result.texts[0] if result.completions else ""
