"""A missing wheel or model skips a test on a developer's machine and fails it in CI."""

from __future__ import annotations

import pytest

from tests.needs import missing


def test_missing_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="the wheel is not installed"):
        missing("the wheel is not installed")


def test_missing_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"the wheel is not installed; CI must have it \(`make test`"):
        missing("the wheel is not installed")
