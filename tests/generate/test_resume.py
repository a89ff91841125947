"""Crash safety: SIGKILL a real `python -m graftlm generate` mid-run, rerun it, and get exactly the output
of an uninterrupted run, with no completed teacher call repeated.

The teacher is a real HTTP server in the test that holds its requests once the journal has the lines
the test waits for: each signal lands while a request is held, so the run cannot have finished first."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from graftlm.generate.fake_responses import respond
from graftlm.testing.fake_server import FakeServer, fake_server

from .conftest import make_taxonomy

RECIPE = """teacher:
  model: "{url}"
  model_name: fake-teacher
  max_in_flight: 2
  # Ctrl-C can wait for a request the server holds until the request times out (seen in full CI runs, not
  # alone): a short timeout keeps the clean stop within the test's 60 s wait
  timeout_s: 15
generate:
  samples_per_leaf: 10
  facts: "off"
"""


def _cmd(tax: Path, out: Path, recipe: Path) -> list[str]:
    return [sys.executable, "-m", "graftlm", "generate", str(tax), "--out", str(out), "--recipe", str(recipe)]


def _journal_lines(out: Path) -> int:
    path = out / "work" / "units.jsonl"
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def _run_and_kill(cmd: list[str], env: dict[str, str], server: FakeServer, hold_when: Callable[[], bool],
                  sig: signal.Signals = signal.SIGKILL) -> int:
    """Run `cmd` until the server holds a request (from when `hold_when()` is true), then send `sig`."""
    server.hold(hold_when)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not server.holding.wait(timeout=0.5):
            if proc.poll() is not None:
                pytest.fail(f"generate finished (rc {proc.returncode}) before the teacher held a request")
        proc.send_signal(sig)
    finally:
        rc = proc.wait(timeout=60)
    return rc


@pytest.mark.xfail(reason="known bug: in full CI runs (never alone) Ctrl-C of a generate whose request the server "
                          "holds did not exit within 60 s; see the closing note of 2026-12-02", strict=False)
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
