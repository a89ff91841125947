"""The torchrun path: two CPU processes with gloo train the tiny model with FSDP2 and save HF checkpoints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from graftlm.artifacts import read_json, read_jsonl
from graftlm.config import load_recipe
from graftlm.config.train import MixConfig
from graftlm.mix import run_mix
from graftlm.train.run import run_train

torch = pytest.importorskip("torch")


@pytest.mark.slow
@pytest.mark.parametrize("extra", [
    pytest.param({}, id="full"),
    pytest.param({"compile": True}, id="compiled-layers"),
    pytest.param({"lora": {"r": 4, "alpha": 8, "dropout": 0.0}}, id="lora"),
])
def test_torchrun_two_processes_gloo(tiny_model: Path, generate_dir: Path, tmp_path: Path,
                                     extra: dict[str, object]) -> None:
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed not available")
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump({
        "mix": {"strategy": "stacked"},
        "train": {"student": str(tiny_model), "epochs": 2, "batch_size": 6, "max_seq_len": 256,
                  "max_tokens_per_row": 256, "learning_rate": 2e-3, "warmup_steps": 1, "num_threads": 1,
                  "device": "cpu", **extra}}))
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    out = tmp_path / "dist"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "graftlm", "train",
                           str(generate_dir), "--recipe", str(recipe_file), "--out", str(out), "-q"],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("final model:") == 1  # only rank 0 reports

    manifest = read_json(out / "manifest.json")
    assert manifest["phases"] == ["stacked"]
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(manifest["final_model"])
    # The same training in one process gives the same losses and (up to reduction order) the same weights.
    single = run_train(run_mix(generate_dir, tmp_path / "mix", MixConfig(strategy="stacked")), tmp_path / "single",
                       load_recipe(recipe_file).train)
    ref = AutoModelForCausalLM.from_pretrained(read_json(single / "manifest.json")["final_model"])
    la = [r["loss"] for r in read_jsonl(out / "stacked" / "metrics.jsonl")]
    lb = [r["loss"] for r in read_jsonl(single / "stacked" / "metrics.jsonl")]
    assert len(la) == len(lb) == 6
    assert la == pytest.approx(lb, rel=1e-4)
    for (name, a), b in zip(trained.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3, msg=name)
    assert la[-1] < la[0]
