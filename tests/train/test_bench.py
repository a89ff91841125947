"""The training benchmarks run (smoke mode) and print their tables."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_throughput_bench_tiny_smoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The variants run the trainer's pieces on the same data: same losses, a table row each."""
    pytest.importorskip("torch")
    bench = _load("train_throughput")
    out_json = tmp_path / "r.json"
    assert bench.main(["--tiny", "--steps", "1", "--warmup", "1", "--threads", "1",
                       "--variants", "baseline,varlen,chunked_ce", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.startswith(("baseline", "varlen", "chunked_ce"))]
    assert [row[0] for row in lines] == ["baseline", "varlen", "chunked_ce"]
    assert [row[1] for row in lines] == ["sdpa", "varlen", "varlen"]
    assert [row[3] for row in lines] == ["full", "full", "chunked"]
    results = json.loads(out_json.read_text())["results"]
    assert all(r["tokens_per_s"] > 0 and r["params"] > 0 for r in results)
    # one warm-up step changed the weights the same way in every variant: equal losses on the second step
    assert max(r["loss_last"] for r in results) - min(r["loss_last"] for r in results) < 1e-4


def test_unknown_variant_and_missing_gpu_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    bench = _load("train_throughput")
    assert bench.main(["--tiny", "--variants", "baseline,warp_speed"]) == 2
    assert "unknown variant 'warp_speed'" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert bench.main([]) == 2
        assert "no GPU" in capsys.readouterr().err


def test_lengths_are_log_normal_around_the_target_mean() -> None:
    import random

    bench = _load("train_throughput")
    lens = bench.lengths(bench.FULL, 2_000_000, random.Random(0))
    mean = sum(lens) / len(lens)
    assert 600 < mean < 740 and max(lens) <= 4096 and sum(lens) >= 2_000_000


def test_gpu_check_fails_when_no_gpu_test_ran(tmp_path: Path) -> None:
    """Without a CUDA GPU every GPU test skips, which pytest calls success: the check script must not."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the GPU tests would run")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(["bash", str(root / "bench" / "gpu_check.sh"), str(tmp_path)], env=env, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "gpu tests that ran: 0" in done.stdout
    assert "FAILED: no GPU test ran" in done.stderr
    assert not (tmp_path / "train_throughput.json").exists()  # the benchmark did not start
