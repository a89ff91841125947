"""Forgetting control on the tiny model: the KL penalty and the decay toward the base weights."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from graftlm.artifacts import read_json, read_jsonl
from graftlm.config import recipe_from_dict
from graftlm.config.train import MixConfig, TrainConfig
from graftlm.errors import ConfigError
from graftlm.mix import run_mix
from graftlm.train.forgetting import anchors, decay_toward, kl_positions, kl_sum, row_loss_and_kl
from graftlm.train.packing import Rendered, build_row, row_loss_sum
from graftlm.train.run import check_config, check_distributed, run_train

torch = pytest.importorskip("torch")


def _train(tiny_model: Path, mix_dir: Path, out: Path, **train: Any) -> Path:
    base = {"student": str(tiny_model), "epochs": 3, "batch_size": 4, "max_seq_len": 512,
            "max_tokens_per_row": 512, "learning_rate": 3e-3, "warmup_steps": 1, "num_threads": 1}
    return run_train(mix_dir, out, recipe_from_dict({"train": {**base, **train}}).train)


def _drift(tiny_model: Path, out: Path) -> tuple[float, float]:
    """(squared distance of the final weights from the base weights, KL(base || final) summed over a row of
    text unlike the training data)."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    final = Path(read_json(out / "manifest.json")["final_model"])
    before = load_file(str(tiny_model / "model.safetensors"))
    after = load_file(str(final / "model.safetensors"))
    weights = sum(float((after[k] - before[k]).pow(2).sum()) for k in before)
    row = build_row([Rendered.from_labels(list(range(100, 300)), list(range(100, 300)))])
    with torch.no_grad():
        _, kl = row_loss_and_kl(AutoModelForCausalLM.from_pretrained(str(final)),
                                AutoModelForCausalLM.from_pretrained(str(tiny_model)), row, 64, 200)
    return weights, float(kl)


@pytest.fixture
def mix_dir(generate_dir: Path, tmp_path: Path) -> Path:
    return run_mix(generate_dir, tmp_path / "mix", MixConfig(strategy="stacked"))


def test_kl_positions_are_evenly_spaced_and_bounded() -> None:
    assert kl_positions(5, 8) == [0, 1, 2, 3, 4]
    got = kl_positions(100, 10)
    assert got == list(range(0, 100, 10))
    assert len(set(kl_positions(1000, 256))) == 256


def test_kl_is_zero_for_equal_logits_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 50, generator=g)
    assert float(kl_sum(a, a)) == pytest.approx(0.0, abs=1e-5)
    assert float(kl_sum(a, a + 3.0)) == pytest.approx(0.0, abs=1e-5)  # same distribution
    b = torch.randn(7, 50, generator=g)
    p, q = torch.log_softmax(b, -1), torch.log_softmax(a, -1)
    assert float(kl_sum(a, b)) == pytest.approx(float((p.exp() * (p - q)).sum()), rel=1e-5)
    assert float(kl_sum(a, b)) > 0.1


def test_penalty_is_zero_at_the_base_and_the_loss_is_unchanged(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    row = build_row([Rendered.from_labels(list(range(5, 40)), [-100] * 10 + list(range(15, 40))),
                     Rendered.from_labels(list(range(50, 70)), list(range(50, 70)))])
    for chunk in (None, 16):
        ce, kl = row_loss_and_kl(model, base, row, chunk, 8)
        assert float(kl) == pytest.approx(0.0, abs=1e-5)
        assert float(ce) == pytest.approx(float(row_loss_sum(model, row, chunk)), rel=1e-5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _, kl = row_loss_and_kl(model, base, row, 16, 8)
    assert float(kl) > 1e-4
    kl.backward()  # the penalty has a gradient in the student only
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.parameters())
    assert all(p.grad is None for p in base.parameters())


def test_decay_toward_moves_weights_to_the_base() -> None:
    model, base = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    decay_toward(anchors(model, base), 0.25)
    for name, p in model.named_parameters():
        b = dict(base.named_parameters())[name]
        assert torch.allclose(p, before[name] + 0.25 * (b - before[name]))
    decay_toward(anchors(model, base), 1.0)
    assert all(torch.equal(p, dict(base.named_parameters())[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("option", [{"kl_to_base": 20.0}, {"decay_to_base": 30.0}])
def test_each_penalty_keeps_the_trained_model_closer_to_the_base(tiny_model: Path, mix_dir: Path, tmp_path: Path,
                                                                 option: dict[str, float]) -> None:
    plain = _train(tiny_model, mix_dir, tmp_path / "plain")
    held = _train(tiny_model, mix_dir, tmp_path / "held", **option)
    (w_plain, kl_plain), (w_held, kl_held) = _drift(tiny_model, plain), _drift(tiny_model, held)
    if "kl_to_base" in option:  # the output distributions stay closer to the base's, even on other text
        assert kl_held < 0.7 * kl_plain
    else:  # the weights stay closer to the base's
        assert w_held < 0.7 * w_plain
    rows = list(read_jsonl(held / "stacked" / "metrics.jsonl"))
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]  # it still learns
    if "kl_to_base" in option:
        assert rows[0]["kl_to_base"] == pytest.approx(0.0, abs=1e-4) and rows[-1]["kl_to_base"] > 0
    else:
        assert "kl_to_base" not in rows[0]


def test_forgetting_control_is_a_config_error_under_torchrun_and_with_lora() -> None:
    with pytest.raises(ConfigError, match="torchrun") as e:
        check_distributed(TrainConfig(kl_to_base=0.5), world=2)
    assert e.value.location is not None and e.value.location.field == "train.kl_to_base"
    with pytest.raises(ConfigError, match="decay_to_base"):
        check_distributed(TrainConfig(decay_to_base=1.0), world=4)
    check_distributed(TrainConfig(kl_to_base=0.5), world=1)
    check_distributed(TrainConfig(), world=8)
    with pytest.raises(ConfigError, match="LoRA"):
        check_config(TrainConfig(decay_to_base=1.0, lora={"r": 4}))
