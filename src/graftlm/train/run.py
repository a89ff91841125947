"""`run_train`: every phase of a mix directory, in order, each starting from the previous phase's selection.

Writes `out/<phase>/` per phase and `out/manifest.json` (`phases`, `base_model`, `final_model`) last.
Finished phases are skipped; an interrupted phase resumes from its last checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from graftlm.artifacts import hash_file, hash_obj, write_manifest
from graftlm.config.train import TrainConfig
from graftlm.errors import ConfigError, Location
from graftlm.mix import read_mix, read_samples
from graftlm.train.distributed import barrier, setup
from graftlm.train.loop import PhaseSpec, Scorer, train_phase

log = logging.getLogger("graftlm.train")

__all__ = ["Scorer", "check_config", "run_train"]


def check_config(cfg: TrainConfig) -> None:
    """Reject settings that cannot work, before any model is loaded."""
    if cfg.max_seq_len > cfg.max_tokens_per_row:
        raise ConfigError(
            f"max_seq_len ({cfg.max_seq_len}) is larger than max_tokens_per_row ({cfg.max_tokens_per_row})",
            location=Location("<recipe>", None, None, "train.max_seq_len"),
            hint="a packed row must hold the longest sample: raise train.max_tokens_per_row or lower train.max_seq_len",
        )
    if cfg.schedule == "cosine" and cfg.min_lr > cfg.learning_rate:
        raise ConfigError("min_lr is above learning_rate", location=Location("<recipe>", None, None, "train.min_lr"),
                          hint="set train.min_lr below train.learning_rate")
    if cfg.attention in ("flex_attention", "flash_attention_2"):
        import torch

        if cfg.device == "cpu" or not torch.cuda.is_available():
            raise ConfigError(f"attention {cfg.attention} trains only on a CUDA GPU",
                              location=Location("<recipe>", None, None, "train.attention"),
                              hint="use attention: sdpa on CPU (it keeps packed samples apart too)")
    if cfg.compile:
        _check_compiler(cfg)
    if cfg.lora is not None and cfg.decay_to_base:
        raise ConfigError("train.decay_to_base pulls full weights toward the base; LoRA adapters start at zero",
                          location=Location("<recipe>", None, None, "train.decay_to_base"),
                          hint="with train.lora use train.weight_decay (decay toward zero is decay toward the base)")
    if cfg.lora is not None:
        try:
            import peft  # noqa: F401
        except ImportError:
            raise ConfigError("train.lora needs the peft package", hint="pip install 'graftlm[train]'") from None


def _check_compiler(cfg: TrainConfig) -> None:
    """torch.compile needs Triton on CUDA and a C++ compiler on CPU: say so before any model is loaded."""
    import shutil

    import torch

    where = Location("<recipe>", None, None, "train.compile")
    on_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if on_cuda:
        try:
            import triton  # noqa: F401
        except ImportError:
            raise ConfigError("train.compile on a GPU needs Triton, which this PyTorch lacks", location=where,
                              hint="install the triton that matches your torch, or set train.compile: false") from None
    elif not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise ConfigError("train.compile on CPU needs a C++ compiler (g++ or clang++) on the PATH", location=where,
                          hint="install g++ (apt-get install g++), or set train.compile: false")


def check_distributed(cfg: TrainConfig, world: int) -> None:
    """Forgetting control runs in single-process training only: under torchrun (FSDP) say so."""
    if world > 1 and (cfg.kl_to_base or cfg.decay_to_base):
        key = "kl_to_base" if cfg.kl_to_base else "decay_to_base"
        raise ConfigError(f"train.{key} is not supported under torchrun (FSDP shards the model it compares to)",
                          location=Location("<recipe>", None, None, f"train.{key}"),
                          hint=f"train in one process (no torchrun), or set train.{key}: 0")


def run_train(mix_dir: Path, out: Path, cfg: TrainConfig, *, scorer: Scorer | None = None,
              stop_after_steps: int | None = None) -> Path:
    """Train every phase of `mix_dir` into `out`; returns `out`. `scorer(checkpoint, kind)` selects checkpoints."""
    from graftlm.models import materialize, resolve

    mix_dir, out = Path(mix_dir), Path(out)
    check_config(cfg)
    for name in cfg.phase_overrides:
        check_config(cfg.for_phase(name))
    phases = read_mix(mix_dir)
    dist = setup(cfg.device)
    for phase_cfg in [cfg, *(cfg.for_phase(name) for name in cfg.phase_overrides)]:
        check_distributed(phase_cfg, dist.world)
    start = materialize(resolve(cfg.student)) if dist.main else None
    barrier(dist)
    if start is None:
        start = materialize(resolve(cfg.student))

    student = start
    chain = hash_obj({"student": cfg.student, "start": str(start)})
    names: list[str] = []
    for entry in phases:
        name = entry["name"]
        phase_cfg = cfg.for_phase(name)
        data_file = mix_dir / entry["file"]
        chain = hash_obj({"previous": chain, "data": hash_file(data_file),
                          "config": phase_cfg.model_dump(mode="json")})
        spec = PhaseSpec(name=name, kind=entry.get("kind", "skills"), samples=read_samples(data_file),
                         start_model=start, out=out / name, input_hash=chain, anchor=student)
        manifest: dict[str, Any] = train_phase(spec, phase_cfg, dist, scorer=scorer,
                                               stop_after_steps=stop_after_steps)
        if not manifest.get("selected"):
            return out  # stopped early on purpose: unfinished, a rerun resumes
        start = Path(manifest["selected"])
        names.append(name)
        if dist.main:
            log.info("phase %s done: selected %s", name, start)
    if dist.main:
        write_manifest(out, {"stage": "train", "input_hash": chain, "phases": names, "base_model": cfg.student,
                             "final_model": str(start), "mix_dir": str(mix_dir)})
    barrier(dist)
    return out
