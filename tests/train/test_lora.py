"""LoRA: merged export equals the adapter model, training changes only adapted layers, resume works."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftlm.artifacts import read_json, read_jsonl
from graftlm.config import recipe_from_dict
from graftlm.config.train import MixConfig
from graftlm.mix import run_mix
from graftlm.train.checkpoint import merged_lora_state

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


def test_merged_state_gives_the_adapter_model_logits(tiny_model: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model)),
                                LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # B starts at zero; make the adapters matter
    peft_model.eval()
    merged = merged_lora_state(peft_model, peft_model.state_dict())
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    base_logits_before = plain(input_ids=torch.tensor([[5, 6, 7, 8]])).logits
    missing, unexpected = plain.load_state_dict(merged, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, peft_model(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    assert (plain(input_ids=ids[:, :4]).logits - base_logits_before).abs().max() > 1e-3


def test_lora_training_exports_merged_folder_and_resumes(tiny_model: Path, generate_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from graftlm.train.run import run_train

    mix_dir = run_mix(generate_dir, tmp_path / "mix", MixConfig(strategy="stacked"))
    recipe = recipe_from_dict({"train": {
        "student": str(tiny_model), "epochs": 2, "batch_size": 4, "max_seq_len": 512, "max_tokens_per_row": 512,
        "learning_rate": 1e-2, "warmup_steps": 1, "num_threads": 1, "checkpoint_every_samples": 8,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}})
    full = run_train(mix_dir, tmp_path / "full", recipe.train)
    final = Path(read_json(full / "manifest.json")["final_model"])
    after, before = load_file(str(final / "model.safetensors")), load_file(str(tiny_model / "model.safetensors"))
    assert after.keys() == before.keys()  # a plain model: no adapter keys
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)
    losses = [r["loss"] for r in read_jsonl(full / "stacked" / "metrics.jsonl")]
    assert losses[-1] < losses[0]

    # Stop after 3 steps (last checkpoint at step 2), then rerun: same losses and weights as uninterrupted.
    part = run_train(mix_dir, tmp_path / "part", recipe.train, stop_after_steps=3)
    assert not (part / "manifest.json").exists()
    run_train(mix_dir, tmp_path / "part", recipe.train)
    assert [r["loss"] for r in read_jsonl(part / "stacked" / "metrics.jsonl")] == losses
    again = load_file(str(Path(read_json(part / "manifest.json")["final_model"]) / "model.safetensors"))
    for k in after:
        assert torch.equal(after[k], again[k]), k
