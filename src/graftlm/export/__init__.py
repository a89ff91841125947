"""Exporting a finished run's selected model.

`EXPORTERS` maps each `graft export --format` to its function `(run_dir, to, *, force) -> Path`; a new
format is one module beside `hf.py` and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from graftlm.errors import InputError
from graftlm.export.card import model_card
from graftlm.export.gguf import export_gguf_run
from graftlm.export.hf import export_hf, final_model_path

Exporter = Callable[..., Path]
"""`(run_dir, to, *, force=False) -> Path`: writes the export and returns its path."""

EXPORTERS: dict[str, Exporter] = {"hf": export_hf, "gguf": export_gguf_run}
"""Export formats by name: `hf` (a Hugging Face model folder with a model card), `gguf` (one GGUF file with an
Ollama Modelfile; `quant=` and `keep_hf=` choose its weights and whether the Hugging Face files stay)."""


def parse_formats(text: str) -> tuple[str, ...]:
    """`hf,gguf` -> ("hf", "gguf"), each a key of `EXPORTERS`; an InputError names an unknown format."""
    items = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [f for f in items if f not in EXPORTERS]
    if not items or bad:
        raise InputError(f"unknown export format {', '.join(bad) or '(none)'}",
                         hint=f"use --format with one or more of {', '.join(EXPORTERS)}, e.g. --format hf,gguf")
    return items


export_run = export_hf
"""The default export: a Hugging Face folder."""

__all__ = ["EXPORTERS", "Exporter", "export_gguf_run", "export_hf", "export_run", "final_model_path", "model_card", "parse_formats"]
