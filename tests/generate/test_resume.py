"""Crash safety: SIGKILL a real `python -m graftlm generate` mid-run, rerun it, and get exactly the output
of an uninterrupted run, with no completed teacher call repeated."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import make_taxonomy

RECIPE = """teacher:
  model: "fake:0.04"
  max_in_flight: 2
generate:
  samples_per_leaf: 10
"""


def _cmd(tax: Path, out: Path, recipe: Path) -> list[str]:
    return [sys.executable, "-m", "graftlm", "generate", str(tax), "--out", str(out), "--recipe", str(recipe)]


def _journal_lines(out: Path) -> int:
    path = out / "work" / "units.jsonl"
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def _run_and_kill(cmd: list[str], env: dict[str, str], out: Path, after_lines: int,
                  sig: signal.Signals = signal.SIGKILL) -> int:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while _journal_lines(out) < after_lines:
            if proc.poll() is not None:
                pytest.fail(f"generate finished (rc {proc.returncode}) before it could be killed")
            if time.monotonic() > deadline:
                pytest.fail("generate made no progress")
            time.sleep(0.02)
        time.sleep(0.05)  # land the kill between journal lines, with requests in flight
        proc.send_signal(sig)
    finally:
        rc = proc.wait(timeout=30)
    return rc


def test_kill_and_resume_gives_the_uninterrupted_output(tmp_path: Path):
    env = {**os.environ, "GRAFTLM_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    tax = make_taxonomy(tmp_path, knowledge=True)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "killed"
    cmd = _cmd(tax, out, recipe)

    _run_and_kill(cmd, env, out, after_lines=2)
    assert not (out / "manifest.json").exists()
    first = _journal_lines(out)
    # Ctrl-C: a clean stop with the "interrupted" exit code, finished work kept
    assert _run_and_kill(cmd, env, out, after_lines=first + 3, sig=signal.SIGINT) == 130
    assert not (out / "manifest.json").exists() and _journal_lines(out) >= first + 3
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
