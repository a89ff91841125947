"""The `graft` command as a whole: what every command does on Ctrl-C."""

from __future__ import annotations

import argparse

import pytest

import graftlm.cli.config as last_command
from graftlm.cli import COMMAND_MODULES, main


def test_ctrl_c_while_the_commands_load_is_a_clean_stop(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The command modules take a noticeable time to import (pydantic configs); a Ctrl-C then is the same
    clean stop as later: the "interrupted" line and exit code 130, no traceback."""
    assert COMMAND_MODULES[-1] == last_command.__name__  # every other command module has loaded by then

    def interrupted(sub: argparse._SubParsersAction) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(last_command, "register", interrupted)
    try:
        code = main(["config"])
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C while the commands load escaped `main` (a traceback, exit code -2)")
    assert code == 130
    assert "interrupted: finished work is kept" in capsys.readouterr().err
