"""Synthetic data generation configuration (`graft generate`)."""

from __future__ import annotations

from pydantic import Field

from graftlm.config.base import Section


class GenerateConfig(Section):
    """How much synthetic data to make per leaf and how to filter it."""

    samples_per_leaf: int = Field(default=30, ge=1)
    """Target number of kept training samples per leaf (before auxiliary knowledge tasks)."""

    seed: int = 42
    """Random seed for sampling seeds, held-out splits and teacher sampling."""
