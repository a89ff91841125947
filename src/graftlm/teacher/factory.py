"""Build a teacher from its config: `fake`, HTTP endpoints, or a local model; optionally cached."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from graftlm.config.teacher import TeacherConfig
from graftlm.teacher.base import Teacher
from graftlm.teacher.fake import FakeTeacher, Responder


def make_teacher(config: TeacherConfig, *, cache_path: Path | None = None,
                 responders: Sequence[Responder] = ()) -> Teacher:
    """`fake` -> FakeTeacher answering through `responders` (the calling stage's, e.g.
    `graftlm.generate.fake_responses.respond`); `http(s)://` URLs -> the OpenAI-compatible client; else a
    local model. With `cache_path`, every call goes through the SQLite call cache at that path."""
    spec = config.model.strip()
    teacher: Teacher
    if spec == "fake":
        teacher = FakeTeacher(responders)
    elif spec.startswith(("http://", "https://")):
        from graftlm.teacher.http import HttpTeacher

        teacher = HttpTeacher.from_config(config)
    else:
        from graftlm.teacher.local import LocalTeacher

        teacher = LocalTeacher.from_config(config)
    if cache_path is not None:
        from graftlm.teacher.cache import CachedTeacher

        teacher = CachedTeacher(teacher, cache_path)
    return teacher
