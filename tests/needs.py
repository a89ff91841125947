"""Skips for parts a developer may not have installed, which fail in CI (`CI=true`), where `make test`
installs them all: a missing wheel must not turn a test into a silent skip there."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str) -> NoReturn:
    """Skip because `what` is not available here; fail instead when `CI=true`."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what}; CI must have it (`make test` installs it)", pytrace=False)
    pytest.skip(what)
