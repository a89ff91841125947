"""The training benchmarks run (smoke mode) and print their tables."""

from __future__ import annotations

import importlib.util
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


def test_throughput_bench_tiny_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    bench = _load("train_throughput")
    assert bench.main(["--tiny", "--steps", "1", "--warmup", "0", "--threads", "1",
                       "--variants", "baseline,fused_ce"]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.startswith(("baseline", "fused_ce"))]
    assert [row[0] for row in lines] == ["baseline", "fused_ce"]
    assert [row[3] for row in lines] == ["full", "chunked"]
    assert all(float(row[5]) > 0 for row in lines)  # tokens/s


def test_lengths_are_log_normal_around_the_target_mean() -> None:
    import random

    bench = _load("train_throughput")
    lens = bench.lengths(bench.FULL, 2_000_000, random.Random(0))
    mean = sum(lens) / len(lens)
    assert 600 < mean < 740 and max(lens) <= 4096 and sum(lens) >= 2_000_000
