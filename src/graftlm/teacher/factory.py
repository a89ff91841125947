"""Build a teacher from its config: `fake`, HTTP endpoints, or a local model; optionally cached.

This is the one place a teacher is made from a model spec: generation, evaluation, checkpoint
selection and the CLI all call `make_teacher`. The spec was parsed when the config loaded
(`ModelSpec.kind`), so nothing here looks at its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from graftlm.config.model_spec import ModelKind
from graftlm.config.teacher import TeacherConfig
from graftlm.teacher.base import Teacher
from graftlm.teacher.fake import FakeTeacher, Responder


def make_teacher(config: TeacherConfig, *, cache_path: Path | None = None,
                 responders: Sequence[Responder] = ()) -> Teacher:
    """`fake` (`fake:SECONDS`) -> FakeTeacher answering through `responders` (the calling stage's, e.g.
    `graftlm.generate.fake_responses.respond`); HTTP URLs -> the OpenAI-compatible client; else a local
    model. With `cache_path`, every call goes through the SQLite call cache at that path."""
    spec = config.model
    teacher: Teacher
    if spec.kind is ModelKind.FAKE:
        teacher = FakeTeacher(responders, latency_s=spec.fake_latency_s)
    elif spec.kind is ModelKind.HTTP:
        from graftlm.teacher.http import HttpTeacher

        teacher = HttpTeacher.from_config(config)
    else:
        from graftlm.teacher.local import LocalTeacher

        teacher = LocalTeacher.from_config(config)
    if cache_path is not None:
        teacher = cached(teacher, cache_path)
    return teacher


def cached(teacher: Teacher, cache_path: Path) -> Teacher:
    """`teacher` behind the SQLite call cache at `cache_path` (for teachers that tests pass in)."""
    from graftlm.teacher.cache import CachedTeacher

    return CachedTeacher(teacher, cache_path)
