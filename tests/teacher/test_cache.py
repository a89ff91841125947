"""CachedTeacher: reruns read from SQLite, the call log, and survival of kill -9 while writing."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from graftlm.config.teacher import TeacherConfig
from graftlm.errors import TeacherError
from graftlm.teacher.base import SamplingOptions
from graftlm.teacher.cache import CachedTeacher, request_key
from graftlm.teacher.factory import make_teacher
from graftlm.teacher.fake import FakeTeacher


def msgs(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {i}"}]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_rerun_reads_from_cache(tmp_path: Path) -> None:
    db = tmp_path / "calls.sqlite"

    async def work(teacher: CachedTeacher) -> list[list[str]]:
        try:
            results = [await teacher.chat(msgs(i), SamplingOptions(n=2, temperature=0.8)) for i in range(5)]
            return [r.texts for r in results]
        finally:
            await teacher.aclose()

    first_inner = FakeTeacher()
    first = run(work(CachedTeacher(first_inner, db)))
    second_inner = FakeTeacher()
    second_cached = CachedTeacher(second_inner, db)
    second = run(work(second_cached))
    assert first == second
    assert first_inner.calls == 5 and second_inner.calls == 0
    assert second_cached.hits == 5 and second_cached.misses == 0


def test_request_hash_call_log_and_sample_prefixes(tmp_path: Path) -> None:
    inner = FakeTeacher()
    teacher = CachedTeacher(inner, tmp_path / "c.sqlite")

    async def work() -> Any:
        a = await teacher.chat(msgs(1), SamplingOptions(n=3))
        b = await teacher.chat(msgs(1), SamplingOptions(n=2))  # a prefix of stored samples
        c = await teacher.chat(msgs(1), SamplingOptions(n=2, temperature=0.5))  # other options: new call
        return a, b, c

    a, b, c = run(work())
    assert a.request_hash == request_key("fake-teacher", msgs(1), SamplingOptions(n=3))
    assert b.request_hash == a.request_hash and c.request_hash != a.request_hash
    assert b.cached and not a.cached and not c.cached
    assert b.texts == a.texts[:2]
    assert b.usage.completion_tokens == sum(len(t.split()) for t in b.texts)
    log = teacher.cache.calls()
    assert [(row["request_hash"], row["n"], row["cached"]) for row in log] == [
        (a.request_hash, 3, 0), (a.request_hash, 2, 1), (c.request_hash, 2, 0)]
    assert all(row["latency_s"] >= 0 and row["completion_tokens"] > 0 for row in log)
    assert inner.calls == 2
    run(teacher.aclose())


def test_identical_concurrent_requests_share_one_call(tmp_path: Path) -> None:
    inner = FakeTeacher(latency_s=0.05)
    teacher = CachedTeacher(inner, tmp_path / "c.sqlite")

    async def work() -> Any:
        return await asyncio.gather(*[teacher.chat(msgs(0), SamplingOptions()) for _ in range(8)])

    results = run(work())
    assert inner.calls == 1
    assert len({r.texts[0] for r in results}) == 1
    run(teacher.aclose())


def test_teacher_errors_are_not_cached(tmp_path: Path) -> None:
    class Flaky(FakeTeacher):
        async def chat(self, messages: Any, options: SamplingOptions) -> Any:
            if self.calls == 0:
                self.calls += 1
                raise TeacherError("down")
            return await super().chat(messages, options)

    teacher = CachedTeacher(Flaky(), tmp_path / "c.sqlite")
    with pytest.raises(TeacherError):
        run(teacher.chat(msgs(0), SamplingOptions()))
    assert teacher.cache.count("samples") == 0
    assert run(teacher.chat(msgs(0), SamplingOptions())).texts
    assert teacher.cache.count("samples") == 1


def test_factory_wraps_fake_teacher_with_cache(tmp_path: Path) -> None:
    teacher = make_teacher(TeacherConfig(model="fake"), cache_path=tmp_path / "c.sqlite")
    assert isinstance(teacher, CachedTeacher) and isinstance(teacher.teacher, FakeTeacher)
    assert teacher.model_id == "fake-teacher"


def test_corrupt_cache_file_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(TeacherError) as err:
        CachedTeacher(FakeTeacher(), db)
    assert str(db) in err.value.message and "delete the file" in (err.value.hint or "")


WRITER = """
import asyncio, sys
from pathlib import Path
from graftlm.teacher.base import SamplingOptions
from graftlm.teacher.cache import CachedTeacher
from graftlm.teacher.fake import FakeTeacher

async def main():
    teacher = CachedTeacher(FakeTeacher(), Path(sys.argv[1]))
    i = 0
    while True:
        await asyncio.gather(*[teacher.chat([{"role": "user", "content": f"q{i + k}" * 50}],
                                            SamplingOptions(n=3)) for k in range(8)])
        i += 8

asyncio.run(main())
"""


@pytest.mark.parametrize("delay", [0.3, 0.9, 1.6])
def test_cache_survives_kill_9_while_writing(tmp_path: Path, delay: float) -> None:
    db = tmp_path / "calls.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(db)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until it is writing, then a little more
            if db.exists() and Path(str(db) + "-wal").exists() and _count(db) > 0:
                break
            time.sleep(0.05)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    con = sqlite3.connect(str(db))
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = con.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    con.close()
    assert stored > 0 and stored % 3 == 0  # whole requests only: a request's samples commit together

    # Resume: the same work reads every stored request from the cache, the teacher answers only the rest.
    inner = FakeTeacher()
    teacher = CachedTeacher(inner, db)
    done = stored // 3

    async def rerun() -> None:
        for i in range(done + 8):
            await teacher.chat([{"role": "user", "content": f"q{i}" * 50}], SamplingOptions(n=3))
        await teacher.aclose()

    run(rerun())
    assert teacher.hits == done  # every stored request is read back, none is asked again
    assert inner.calls == teacher.misses and teacher.hits + teacher.misses == done + 8


def _count(db: Path) -> int:
    try:
        con = sqlite3.connect(str(db), timeout=1)
        try:
            return int(con.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0
