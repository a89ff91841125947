"""Shared fixtures: a tiny random model folder built once per test session, a generate folder for mixing
and training, the community corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.samples import make_generate_dir

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with the committed tiny tokenizer, as a Hugging Face folder."""
    pytest.importorskip("transformers")
    from graftlm.testing.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The real community taxonomy corpus beside the checkout (`../shared/corpora`)."""
    root = Path(__file__).resolve().parents[1]
    for cand in (root.parent / "shared" / "corpora", root / "shared" / "corpora"):
        if cand.is_dir():
            return cand
    pytest.skip("shared/corpora not found beside the checkout")


@pytest.fixture
def generate_dir(tmp_path: Path) -> Path:
    """A generate folder with knowledge (short and long answers) and both skill branches (tests/samples.py)."""
    return make_generate_dir(tmp_path / "generate")
