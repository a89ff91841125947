"""A generation that keeps no training sample is a failure: `graft generate` and `graft run` exit non-zero
with the reason and the next step, and leave no manifest that would pass the folder off as finished.
Real subprocesses against a real local server whose judge rejects every question."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from graftlm.generate import fake_responses
from graftlm.teacher.base import Message, SamplingOptions
from graftlm.teacher.fake import FakeTeacher
from graftlm.testing.http import openai_handler, scripted_server

from .conftest import make_taxonomy

SRC = Path(__file__).resolve().parents[2] / "src"


def strict_judge(messages: list[Message], options: SamplingOptions, index: int) -> str | None:
    if messages[-1]["content"].startswith("Check a question for this task"):
        return "Explanation: not what the task asks for.\nVerdict: 0"
    return fake_responses.respond(messages, options, index)


def graft(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "GRAFTLM_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "graftlm", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_generate_and_run_stop_when_nothing_is_kept(tmp_path: Path, tiny_model: Path) -> None:
    tax = make_taxonomy(tmp_path, knowledge=False)
    shutil.rmtree(tax / "compositional_skills" / "grounded")  # the freeform leaf only: its questions all fail
    with scripted_server(openai_handler(FakeTeacher([strict_judge]))) as (url, _):
        gen = graft("generate", str(tax), "--out", str(tmp_path / "gen"), "--teacher", url + "/v1",
                    home=tmp_path / "home")
        recipe = tmp_path / "r.yaml"
        recipe.write_text(f"teacher:\n  model: {url}/v1\ntrain:\n  student: {tiny_model}\n", encoding="utf-8")
        run = graft("run", str(tax), "--recipe", str(recipe),
                    "--out", str(tmp_path / "run"), home=tmp_path / "home")

    assert gen.returncode == 3, gen.stderr
    assert "generate kept 0 training samples" in gen.stderr and "'judge_question'" in gen.stderr
    assert "--preview" in gen.stderr and "generate.judge_questions" in gen.stderr
    assert "Traceback" not in gen.stderr
    assert not (tmp_path / "gen" / "manifest.json").exists()
    assert (tmp_path / "gen" / "rejects.jsonl").read_text().count("judged_0") > 0

    assert run.returncode == 3, run.stdout + run.stderr
    assert "generate kept 0 training samples" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "run" / "train").exists()
