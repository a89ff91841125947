"""Crash safety: SIGKILL a real `python -m graftlm generate` mid-run, rerun it, and get exactly the output
of an uninterrupted run, with no completed teacher call repeated.

The teacher is a real HTTP server in the test that holds its requests once the journal has the lines
the test waits for: each signal lands while a request is held, so the run cannot have finished first.

The runs start with SIGINT at its default action, as a command typed in a terminal does. A shell without
job control (a script's `cmd &`, so a CI job started in the background) starts its background commands
with SIGINT ignored; Python, pytest and their children keep it ignored, and a Ctrl-C (SIGINT) then
cannot reach `graft generate` at all: that, not the product, was the "hang" of full CI runs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from graftlm.generate.fake_responses import respond
from graftlm.testing.fake_server import FakeServer, fake_server

from .conftest import make_taxonomy

RECIPE = """teacher:
  model: "{url}"
  model_name: fake-teacher
  max_in_flight: 2
generate:
  samples_per_leaf: 10
"""


def _cmd(tax: Path, out: Path, recipe: Path) -> list[str]:
    return [sys.executable, "-m", "graftlm", "generate", str(tax), "--out", str(out), "--recipe", str(recipe)]


def _journal_lines(out: Path) -> int:
    path = out / "work" / "units.jsonl"
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start `cmd` with SIGINT at its default action, whatever this process inherited (see the module
    docstring): a handler set here becomes the default action in the child when it execs."""
    with _sigint(signal.default_int_handler):
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def _sigint(handler: Callable[[int, FrameType | None], Any] | signal.Handlers) -> Iterator[None]:
    """This process's SIGINT handler is `handler` inside the block (tests run in the main thread)."""
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)


def _run_and_kill(cmd: list[str], env: dict[str, str], server: FakeServer, hold_when: Callable[[], bool],
                  sig: signal.Signals = signal.SIGKILL) -> int:
    """Run `cmd` until the server holds a request (from when `hold_when()` is true), then send `sig`."""
    server.hold(hold_when)
    proc = _start(cmd, env)
    try:
        while not server.holding.wait(timeout=0.5):
            if proc.poll() is not None:
                pytest.fail(f"generate finished (rc {proc.returncode}) before the teacher held a request")
        proc.send_signal(sig)
    finally:
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # leave no run behind to write into the folder after the test
            proc.wait()
            pytest.fail(f"generate did not stop within 60 s of {sig.name}")
    return rc


def test_kill_and_resume_gives_the_uninterrupted_output(tmp_path: Path):
    env = {**os.environ, "GRAFTLM_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    tax = make_taxonomy(tmp_path, knowledge=True)
    recipe = tmp_path / "recipe.yaml"
    out = tmp_path / "killed"
    cmd = _cmd(tax, out, recipe)
    with fake_server([respond]) as server:
        recipe.write_text(RECIPE.format(url=server.url))
        _run_and_kill(cmd, env, server, lambda: _journal_lines(out) >= 2)
        assert not (out / "manifest.json").exists()
        first = _journal_lines(out)
        # Ctrl-C: a clean stop with the "interrupted" exit code, finished work kept
        assert _run_and_kill(cmd, env, server, lambda: _journal_lines(out) >= first + 3, sig=signal.SIGINT) == 130
        assert not (out / "manifest.json").exists() and _journal_lines(out) >= first + 3
        server.release()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert (out / "manifest.json").is_file()

        clean = tmp_path / "clean"
        ref = subprocess.run(_cmd(tax, clean, recipe), env=env, capture_output=True, text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    for name in ("train.jsonl", "eval.jsonl", "chunks.jsonl"):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
    assert (out / "train.jsonl").read_bytes().count(b"\n") > 10

    with sqlite3.connect(out / "calls.sqlite") as db:
        repeated = db.execute("SELECT request_hash, n, COUNT(*) FROM calls WHERE cached = 0 "
                              "GROUP BY request_hash, n HAVING COUNT(*) > 1").fetchall()
        fresh = db.execute("SELECT COUNT(*) FROM calls WHERE cached = 0").fetchone()[0]
    assert repeated == []
    with sqlite3.connect(clean / "calls.sqlite") as db:
        assert fresh <= db.execute("SELECT COUNT(*) FROM calls WHERE cached = 0").fetchone()[0]


def test_ctrl_c_stops_generate_when_the_tests_were_started_with_sigint_ignored(tmp_path: Path):
    """The condition of a CI job started in the background (`CI=true bash .ci/run &` in a script): pytest
    inherited SIGINT ignored. The run under test still gets Ctrl-C, stops cleanly and keeps its work."""
    env = {**os.environ, "GRAFTLM_HOME": str(tmp_path / "home")}
    tax = make_taxonomy(tmp_path, knowledge=True)
    recipe = tmp_path / "recipe.yaml"
    out = tmp_path / "out"
    with fake_server([respond]) as server, _sigint(signal.SIG_IGN):
        recipe.write_text(RECIPE.format(url=server.url))
        assert _run_and_kill(_cmd(tax, out, recipe), env, server, lambda: _journal_lines(out) >= 1,
                             sig=signal.SIGINT) == 130
    assert _journal_lines(out) >= 1 and not (out / "manifest.json").exists()
