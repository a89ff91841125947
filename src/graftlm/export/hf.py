"""Export a run's selected final model as a Hugging Face folder (LoRA adapters merged) with a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from graftlm.artifacts import MANIFEST, atomic_dir, read_manifest
from graftlm.errors import ConfigError, InputError
from graftlm.export.card import model_card

_TRAINING_STATE = ("optimizer", "scheduler", "rng", "trainer_state", "training_state", "train_state")
"""File name prefixes of training state that an exported model leaves out."""


def final_model_path(run_dir: Path) -> Path:
    """The selected final model of a finished run (`train/manifest.json` `final_model`)."""
    train_dir = Path(run_dir) / "train"
    manifest = read_manifest(train_dir)
    if manifest is None or not manifest.get("final_model"):
        raise InputError(f"{run_dir} has no finished training ({train_dir / MANIFEST} missing or without final_model)",
                         hint=f"finish the run first: `graft run TAXONOMY --recipe RECIPE --out {run_dir}`")
    path = Path(str(manifest["final_model"]))
    if not path.is_absolute():
        path = train_dir / path
    elif not path.exists() and "train" in path.parts:  # the run directory was moved or copied
        parts = path.parts
        path = train_dir.joinpath(*parts[len(parts) - parts[::-1].index("train"):])
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise InputError(f"the final model {path} named by {train_dir / MANIFEST} is not a model folder",
                         hint="delete the train folder and rerun `graft run` to retrain")
    return path


def export_hf(run_dir: Path, to: Path, *, force: bool = False) -> Path:
    """Write the run's selected final model to `to` as a Hugging Face folder (LoRA adapters merged),
    with a model card (README.md) listing the taxonomy leaves, data counts and evaluation table.
    The folder appears complete or not at all."""
    run_dir, to = Path(run_dir), Path(to)
    src = final_model_path(run_dir)
    if to.exists() and any(to.iterdir()) and not force:
        raise ConfigError(f"export folder {to} exists and is not empty", hint="pass another --to, or --force to replace it")
    with atomic_dir(to, replace=True) as tmp:
        if (src / "adapter_config.json").is_file():
            merge_lora(src, tmp)
        else:
            for f in sorted(src.iterdir()):
                if f.is_file() and not f.name.startswith(_TRAINING_STATE) and f.suffix not in (".pt", ".pth"):
                    shutil.copy2(f, tmp / f.name)
        (tmp / "README.md").write_text(model_card(run_dir, src), encoding="utf-8")
    return to


def merge_lora(adapter: Path, out: Path) -> None:
    """Merge a LoRA adapter folder into its base model and save the result (float32, with tokenizer) in `out`."""
    from peft import PeftModel

    from graftlm.models import load_model

    base_spec = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base_spec:
        raise InputError(f"{adapter / 'adapter_config.json'} names no base model", hint="retrain with a current graftlm")
    base, tok = load_model(str(base_spec), device="cpu", dtype="float32")
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    tok.save_pretrained(str(out))
