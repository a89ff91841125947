"""Checkpoints and resume state.

A checkpoint is a plain Hugging Face folder (config, safetensors, tokenizer) that
`AutoModelForCausalLM.from_pretrained` loads directly; LoRA checkpoints are saved merged. The resume
state (`resume/state.pt`: optimizer, scheduler, step, RNG, adapter weights for LoRA) points at the
checkpoint holding the weights, and is written after it, so a kill at any moment leaves a consistent pair.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

from graftlm.train.distributed import Dist, barrier


def _is_lora(model: Any) -> bool:
    return hasattr(model, "peft_config")


def full_state_dict(model: Any, dist: Dist) -> dict[str, Any]:
    """The whole model's state on CPU (gathered from all shards under FSDP; a collective call)."""
    if dist.enabled:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def merged_lora_state(model: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The base model's state dict with every LoRA delta (scaling x B @ A) added, computed from `state` alone
    (the live model only gives each layer's scaling), so it works on a state gathered from FSDP shards."""
    from peft.tuners.lora import LoraLayer

    merged: dict[str, Any] = {}
    for key, value in state.items():
        if ".lora_" in key or "lora_embedding" in key:
            continue
        merged[key.replace("base_model.model.", "", 1).replace(".base_layer.", ".")] = value
    for name, module in model.named_modules():
        layer: Any = module
        if not isinstance(module, LoraLayer) or "default" not in getattr(layer, "lora_A", {}):
            continue
        a, b = state[f"{name}.lora_A.default.weight"], state[f"{name}.lora_B.default.weight"]
        delta = (b.float() @ a.float()) * float(layer.scaling["default"])
        if getattr(layer, "fan_in_fan_out", False):
            delta = delta.t()
        key = name.replace("base_model.model.", "", 1) + ".weight"
        merged[key] = merged[key] + delta.to(device=merged[key].device, dtype=merged[key].dtype)
    return merged


def save_checkpoint(model: Any, tokenizer: Any, path: Path, dist: Dist) -> None:
    """Write an HF folder at `path` atomically (a temporary folder renamed into place)."""
    state = full_state_dict(model, dist)
    if dist.main:
        if _is_lora(model):
            state = merged_lora_state(model, state)
            base = model.get_base_model()
        else:
            base = model
        if getattr(base.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # gathered separately under FSDP; it is the embedding
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        base.save_pretrained(str(tmp), state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    barrier(dist)


def rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def optimizer_state(model: Any, optimizer: Any, dist: Dist) -> dict[str, Any]:
    if dist.enabled:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return optimizer.state_dict()


def load_optimizer_state(model: Any, optimizer: Any, state: dict[str, Any], dist: Dist) -> None:
    if dist.enabled:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state,
                                 options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=False))
    else:
        optimizer.load_state_dict(state)


def adapter_state(model: Any, dist: Dist) -> dict[str, Any] | None:
    """The LoRA weights in full (gathered from the shards under FSDP: a collective call), or None."""
    if not _is_lora(model):
        return None
    return {k: v.detach().cpu().clone() for k, v in full_state_dict(model, dist).items() if ".lora_" in k}


def save_resume(path: Path, state: dict[str, Any], dist: Dist, rank_rng: dict[str, Any]) -> None:
    """Write the resume state atomically (rank 0), and each rank's RNG state beside it."""
    import torch

    path.mkdir(parents=True, exist_ok=True)
    rng_file = path / f"rng-{dist.rank}.pt"
    torch.save(rank_rng, str(rng_file) + ".tmp")
    os.replace(str(rng_file) + ".tmp", rng_file)
    barrier(dist)
    if dist.main:
        torch.save(state, str(path / "state.pt.tmp"))
        os.replace(path / "state.pt.tmp", path / "state.pt")
    barrier(dist)


def load_resume(path: Path, dist: Dist) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """(state, this rank's RNG state) or None when there is nothing to resume."""
    import torch

    file = path / "state.pt"
    if not file.is_file():
        return None
    state = torch.load(file, map_location="cpu", weights_only=False)
    rng_file = path / f"rng-{dist.rank}.pt"
    rng = torch.load(rng_file, map_location="cpu", weights_only=False) if rng_file.is_file() else None
    return state, rng
