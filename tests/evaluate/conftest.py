"""Fixtures of the evaluation tests (the builders live in eval_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .eval_helpers import make_generate_dir


@pytest.fixture
def generate_dir(tmp_path: Path) -> Path:
    return make_generate_dir(tmp_path / "generate")
