"""Exact resume: a real training subprocess is killed (SIGKILL) at several points, rerun each time, and
its final weights and per-step losses must equal those of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graftlm.artifacts import read_json, read_jsonl
from graftlm.config.train import MixConfig
from graftlm.mix import run_mix

torch = pytest.importorskip("torch")

# The child trains with run_train; KILL_AT picks where it SIGKILLs itself:
#   ckpt:N  right after its N-th checkpoint folder is written, before the resume state that points at it
#   state:N right after its N-th resume state is written
#   slow    never itself; every row sleeps so the parent can kill it at an arbitrary moment
CHILD = r"""
import os, signal, sys, time
from pathlib import Path
import graftlm.train.checkpoint as ckpt
import graftlm.train.loop as loop
from graftlm.config import recipe_from_dict
from graftlm.train.run import run_train

mode, _, n = os.environ.get("KILL_AT", "").partition(":")
calls = {"ckpt": 0, "state": 0}
def wrap(fn, kind):
    def inner(*a, **k):
        fn(*a, **k)
        calls[kind] += 1
        if mode == kind and calls[kind] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)
    return inner
ckpt.save_checkpoint = wrap(ckpt.save_checkpoint, "ckpt")
ckpt.save_resume = wrap(ckpt.save_resume, "state")
if mode == "slow":
    real = loop.row_loss_sum
    def slow(*a, **k):
        time.sleep(0.05)
        return real(*a, **k)
    loop.row_loss_sum = slow
mix_dir, out, student = sys.argv[1:4]
recipe = recipe_from_dict({"train": {"student": student, "epochs": 2, "batch_size": 2, "max_seq_len": 512,
    "max_tokens_per_row": 512, "learning_rate": 3e-3, "warmup_steps": 2, "checkpoint_every_samples": 4,
    "num_threads": 1, "weight_decay": 0.01}})
run_train(Path(mix_dir), Path(out), recipe.train)
"""


def _run(script: Path, mix_dir: Path, out: Path, student: Path, kill_at: str = "") -> subprocess.Popen:
    env = {**os.environ, "KILL_AT": kill_at, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, str(script), str(mix_dir), str(out), str(student)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _steps_done(out: Path) -> int:
    return sum(len(list(read_jsonl(p))) for p in out.glob("*/metrics.jsonl"))


@pytest.mark.slow
def test_killed_training_resumes_exactly(tiny_model: Path, generate_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    mix_dir = run_mix(generate_dir, tmp_path / "mix", MixConfig())
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    ref = _run(script, mix_dir, tmp_path / "ref", tiny_model)
    killed_out = tmp_path / "killed"
    for kill_at in ("state:2", "ckpt:3", "slow"):
        p = _run(script, mix_dir, killed_out, tiny_model, kill_at)
        if kill_at == "slow":
            start = _steps_done(killed_out)
            deadline = time.time() + 60
            while _steps_done(killed_out) < start + 3 and p.poll() is None and time.time() < deadline:
                time.sleep(0.02)
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=120)
        assert p.returncode == -signal.SIGKILL, p.stderr.read() if p.stderr else ""
        assert not (killed_out / "manifest.json").exists()
    last = _run(script, mix_dir, killed_out, tiny_model)
    assert last.wait(timeout=120) == 0, last.stderr.read() if last.stderr else ""
    assert ref.wait(timeout=120) == 0, ref.stderr.read() if ref.stderr else ""

    a, b = read_json(tmp_path / "ref" / "manifest.json"), read_json(killed_out / "manifest.json")
    assert a["phases"] == b["phases"] == ["knowledge-1", "knowledge-2", "skills"]
    for phase in a["phases"]:
        ma = read_json(tmp_path / "ref" / phase / "manifest.json")
        mb = read_json(killed_out / phase / "manifest.json")
        assert [c["step"] for c in ma["checkpoints"]] == [c["step"] for c in mb["checkpoints"]]
        la = [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in read_jsonl(tmp_path / "ref" / phase / "metrics.jsonl")]
        lb = [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in read_jsonl(killed_out / phase / "metrics.jsonl")]
        assert la == lb
        assert not (killed_out / phase / "resume").exists()
    wa = load_file(str(Path(a["final_model"]) / "model.safetensors"))
    wb = load_file(str(Path(b["final_model"]) / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
