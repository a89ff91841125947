"""The phase loop on the tiny model: learning, checkpoints, selection, skip on rerun, accumulation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graftlm.artifacts import read_json, read_jsonl
from graftlm.config import Recipe, recipe_from_dict
from graftlm.config.train import MixConfig, TrainConfig
from graftlm.errors import ConfigError
from graftlm.mix import run_mix
from graftlm.train.loop import lr_lambda
from graftlm.train.run import run_train

torch = pytest.importorskip("torch")

METRIC_FIELDS = {"phase", "step", "epoch", "samples_seen", "loss", "lr", "grad_norm", "tokens_per_s", "time"}


def recipe(student: Path, **train: Any) -> Recipe:
    base = {"student": str(student), "epochs": 2, "batch_size": 4, "max_seq_len": 512, "max_tokens_per_row": 512,
            "learning_rate": 3e-3, "warmup_steps": 1, "num_threads": 1}
    base.update(train)
    return recipe_from_dict({"train": base})


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture
def mix_dir(generate_dir: Path, tmp_path: Path) -> Path:
    return run_mix(generate_dir, tmp_path / "mix", MixConfig())


def test_trains_all_phases_and_writes_contract_files(tiny_model: Path, mix_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    out = run_train(mix_dir, tmp_path / "train", recipe(tiny_model, epochs=4).train)
    top = read_json(out / "manifest.json")
    assert top["phases"] == ["knowledge-1", "knowledge-2", "skills"]
    start = str(tiny_model)
    for name in top["phases"]:
        m = read_json(out / name / "manifest.json")
        assert Path(m["start_model"]) == Path(start).resolve() or m["start_model"] == start
        assert m["selected"] == m["checkpoints"][-1]["path"]  # no scorer: the last one
        assert [c["epoch"] for c in m["checkpoints"]] == [1, 2, 3, 4]
        rows = list(read_jsonl(out / name / "metrics.jsonl"))
        assert set(rows[0]) >= METRIC_FIELDS and [r["step"] for r in rows] == list(range(1, m["steps"] + 1))
        assert rows[-1]["samples_seen"] == 4 * m["samples"]
        start = m["selected"]
    assert top["final_model"] == start
    # knowledge-1 has the same 6 samples every epoch: the last epoch's loss is below the first's
    k1 = list(read_jsonl(out / "knowledge-1" / "metrics.jsonl"))
    assert k1[-1]["loss"] < k1[0]["loss"] - 0.3
    # the final checkpoint is a plain HF folder that transformers loads, with changed weights
    model = AutoModelForCausalLM.from_pretrained(top["final_model"])
    assert model.config.num_hidden_layers == 2
    before, after = weights(tiny_model), weights(Path(top["final_model"]))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (Path(top["final_model"]) / "tokenizer.json").is_file()

    # A rerun skips every finished phase: nothing is rewritten.
    stamp = (out / "skills" / "manifest.json").stat().st_mtime_ns
    lines = len(list(read_jsonl(out / "skills" / "metrics.jsonl")))
    run_train(mix_dir, tmp_path / "train", recipe(tiny_model, epochs=4).train)
    assert (out / "skills" / "manifest.json").stat().st_mtime_ns == stamp
    assert len(list(read_jsonl(out / "skills" / "metrics.jsonl"))) == lines


def test_scorer_selects_best_and_earliest_on_ties(tiny_model: Path, mix_dir: Path, tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []
    table = {1: 0.5, 2: 0.9, 3: 0.9, 4: 0.1}

    def scorer(folder: Path, kind: str) -> float:
        assert (folder / "config.json").is_file()
        calls.append((folder.name, kind))
        epoch = int(folder.name.split("-")[1])  # step number; one step per epoch in knowledge-1 below
        return table[min(epoch, 4)] if kind == "knowledge" else float(epoch)

    r = recipe(tiny_model, epochs=4, batch_size=64)  # one step per epoch
    out = run_train(mix_dir, tmp_path / "train", r.train, scorer=scorer)
    k1 = read_json(out / "knowledge-1" / "manifest.json")
    assert [c["score"] for c in k1["checkpoints"]] == [0.5, 0.9, 0.9, 0.1]
    assert k1["selected"].endswith("step-000002")
    k2 = read_json(out / "knowledge-2" / "manifest.json")
    assert k2["start_model"] == k1["selected"]
    sk = read_json(out / "skills" / "manifest.json")
    assert sk["selected"].endswith("step-000004")
    assert ("step-000001", "knowledge") in calls and ("step-000004", "skills") in calls
    assert len(calls) == 12  # each checkpoint scored once


def test_loss_is_normalised_over_the_effective_batch(tiny_model: Path, mix_dir: Path, tmp_path: Path) -> None:
    """One optimizer step gives the same update whether the batch is one packed row or many small rows."""
    outs = []
    for i, row in enumerate((512, 160)):
        # a large adam_eps keeps Adam's first step proportional to the gradient (not lr * sign(grad))
        r = recipe(tiny_model, epochs=1, batch_size=64, max_seq_len=160, max_tokens_per_row=row, adam_eps=1e-2)
        outs.append(run_train(mix_dir, tmp_path / f"t{i}", r.train))
    m0 = list(read_jsonl(outs[0] / "skills" / "metrics.jsonl"))
    m1 = list(read_jsonl(outs[1] / "skills" / "metrics.jsonl"))
    assert m0[0]["rows"] < m1[0]["rows"]
    assert m0[0]["loss"] == pytest.approx(m1[0]["loss"], rel=1e-5)
    assert m0[0]["grad_norm"] == pytest.approx(m1[0]["grad_norm"], rel=1e-5)
    a = weights(Path(read_json(outs[0] / "manifest.json")["final_model"]))
    b = weights(Path(read_json(outs[1] / "manifest.json")["final_model"]))
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)


def test_long_samples_are_dropped_and_counted(tiny_model: Path, mix_dir: Path, tmp_path: Path) -> None:
    out = run_train(mix_dir, tmp_path / "train", recipe(tiny_model, epochs=1, max_seq_len=100, max_tokens_per_row=100).train)
    k2 = read_json(out / "knowledge-2" / "manifest.json")
    assert k2["dropped"]["too_long"] > 0


def test_learning_rate_schedules() -> None:
    const = lr_lambda(TrainConfig(warmup_steps=4, learning_rate=1.0), 20)
    assert [const(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cos = lr_lambda(TrainConfig(warmup_steps=2, schedule="cosine", learning_rate=1.0, min_lr=0.1), 12)
    assert cos(1) == 1.0 and cos(2) == pytest.approx(1.0)
    assert cos(7) == pytest.approx(0.55) and cos(12) == pytest.approx(0.1)


def test_impossible_settings_fail_before_loading(tmp_path: Path, mix_dir: Path) -> None:
    with pytest.raises(ConfigError, match="max_tokens_per_row"):
        run_train(mix_dir, tmp_path / "t", recipe(tmp_path / "missing", max_seq_len=1024, max_tokens_per_row=512).train)
    with pytest.raises(ConfigError, match="CUDA"):
        run_train(mix_dir, tmp_path / "t", recipe(tmp_path / "missing", attention="flex_attention", device="cpu").train)
    with pytest.raises(ConfigError, match="unknown phase"):
        recipe_from_dict({"train": {"phase_overrides": {"knowledge-3": {"epochs": 1}}}})


def test_gradient_checkpointing_auto_policy() -> None:
    assert TrainConfig(max_seq_len=1024).use_gradient_checkpointing("cpu")
    assert not TrainConfig(max_seq_len=512).use_gradient_checkpointing("cpu")
    assert not TrainConfig(max_seq_len=4096).use_gradient_checkpointing("cuda:0")
    assert TrainConfig(gradient_checkpointing=True).use_gradient_checkpointing("cuda:0")
    assert not TrainConfig(gradient_checkpointing=False, max_seq_len=2048).use_gradient_checkpointing("cpu")


def test_gradient_checkpointing_gives_the_same_step(tiny_model: Path, generate_dir: Path, tmp_path: Path) -> None:
    mix = run_mix(generate_dir, tmp_path / "mix", MixConfig(strategy="stacked"))
    got = []
    for gc in (False, True):
        out = run_train(mix, tmp_path / f"gc{gc}", recipe(tiny_model, epochs=1, batch_size=64, gradient_checkpointing=gc).train)
        got.append(next(iter(read_jsonl(out / "stacked" / "metrics.jsonl"))))
    assert got[0]["loss"] == pytest.approx(got[1]["loss"], rel=1e-6)
    assert got[0]["grad_norm"] == pytest.approx(got[1]["grad_norm"], rel=1e-5)
