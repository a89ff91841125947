"""Exporting a finished run's selected model.

`EXPORTERS` maps each `graft export --format` to its function `(run_dir, to, *, force) -> Path`; a new
format is one module beside `hf.py` and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from graftlm.export.card import model_card
from graftlm.export.gguf import export_gguf_run
from graftlm.export.hf import export_hf, final_model_path

Exporter = Callable[..., Path]
"""`(run_dir, to, *, force=False) -> Path`: writes the export and returns its path."""

EXPORTERS: dict[str, Exporter] = {"hf": export_hf, "gguf": export_gguf_run}
"""Export formats by name: `hf` (a Hugging Face model folder with a model card), `gguf` (one GGUF file with an
Ollama Modelfile; `quant=` and `keep_hf=` choose its weights and whether the Hugging Face files stay)."""

export_run = export_hf
"""The default export: a Hugging Face folder."""

__all__ = ["EXPORTERS", "Exporter", "export_gguf_run", "export_hf", "export_run", "final_model_path", "model_card"]
