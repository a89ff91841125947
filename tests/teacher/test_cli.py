"""`graft models list` and `graft chat` (one question, and the REPL keeping history)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from graftlm.cli import main
from graftlm.teacher.fake import generic_answer


def test_models_list_shows_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "MODEL", "STATUS", "PATH"]
    assert any(line.startswith("default") and "SmolLM2-135M-Instruct" in line for line in out.splitlines())


def test_chat_one_question_with_local_model(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["chat", str(tiny_model), "-p", "Hello?", "--max-tokens", "5", "--device", "cpu", "--dtype", "float32"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first  # greedy by default: the same answer


def test_chat_repl_keeps_history_until_exit(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("My name is Ada.\n\nWhat is my name?\n/exit\nnever read\n"))
    assert main(["chat", "fake", "--system", "Be kind."]) == 0
    lines = capsys.readouterr().out.splitlines()
    history = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "My name is Ada."}]
    first = generic_answer(history, 0)
    history += [{"role": "assistant", "content": first}, {"role": "user", "content": "What is my name?"}]
    assert lines == [first, generic_answer(history, 0)]  # the second answer saw the whole conversation


def test_chat_with_missing_model_is_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", str(tmp_path / "nope"), "-p", "hi"]) == 3
    err = capsys.readouterr().err
    assert "model not found" in err and "hint:" in err
