"""Data mixing and training configuration (`graft train`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from graftlm.config.base import Section


class MixConfig(Section):
    """How generated data becomes phase datasets."""

    strategy: Literal["phased", "stacked"] = "phased"
    """`phased`: knowledge-1, knowledge-2, skills with replay (the LAB paper); `stacked`: one phase with everything."""

    seed: int = 42
    """Seed for shuffling and sampling the replay buffer."""


class TrainConfig(Section):
    """How the student is trained."""

    student: str = "default"
    """The model to train: `default` (embedded SmolLM2-135M-Instruct), a Hugging Face model folder or a GGUF file."""

    learning_rate: float = Field(default=2e-5, gt=0)
    """Peak learning rate of AdamW."""

    seed: int = 42
    """Seed for initialisation of new parameters, data order and dropout."""
