"""Getting answers from evaluated models and judgments from judges, through the teacher protocol.

Every model answers through a teacher (`make_teacher`), wrapped in the SQLite call cache, so an
interrupted evaluation resumes without asking a question twice. The cache file is keyed by a fingerprint
of the model's weights, so a checkpoint retrained in place never reuses stale answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from graftlm.artifacts import hash_obj
from graftlm.config.model_spec import ModelSpec
from graftlm.config.teacher import TeacherConfig
from graftlm.teacher.base import Message, SamplingOptions, Teacher

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_local(spec: str) -> bool:
    """True for specs loaded in this process (default, folders, GGUF), False for `fake` and HTTP URLs."""
    return ModelSpec(spec).is_local


def fingerprint(spec: str) -> str:
    """A short hash that changes when the model behind `spec` changes: config and weight files' names,
    sizes and modification times for local models, the spec itself for `fake` and URLs."""
    if not is_local(spec):
        return hash_obj(["remote", spec.strip()])[:16]
    from graftlm.models import resolve

    ref = resolve(spec)
    path = ref.path
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    stats = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in files]
    return hash_obj([str(path), stats])[:16]


def open_teacher(config: TeacherConfig, cache_dir: Path | None) -> Teacher:
    """A teacher for `config` with the call cache in `cache_dir/<fingerprint>.sqlite` (None: uncached);
    `fake` answers evaluation's judge prompts."""
    from graftlm.evaluate.fake_responses import respond
    from graftlm.teacher.factory import make_teacher

    cache = cache_dir / f"{fingerprint(config.model)}.sqlite" if cache_dir is not None else None
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
