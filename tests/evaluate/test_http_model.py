"""Evaluating a model behind a real OpenAI-compatible server (`graft serve` on a tiny model, over HTTP)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eval_helpers import KNOWLEDGE_LEAF, make_generate_dir, read_lines

from graftlm.config import recipe_from_dict
from graftlm.evaluate.run import run_eval


@pytest.fixture(scope="module")
def served(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(OMP_NUM_THREADS="2", HF_HUB_OFFLINE="1")
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "graftlm", "serve", str(tiny_model), "--port", str(port),
                                 "--device", "cpu", "--dtype", "float32"], stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"graft serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"graft serve did not come up:\n{log.read_text()}")
            time.sleep(0.2)
        yield url + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_eval_of_a_served_model(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    gen = make_generate_dir(tmp_path / "generate", knowledge=3, skills=2)
    recipe = recipe_from_dict({"teacher": {"model": "fake", "max_retries": 0}, "judge": {"model": "fake"},
                               "eval": {"max_new_tokens": 6, "mt_bench_questions": 1, "bootstrap_samples": 200}})
    out = run_eval(served, gen, tmp_path / "eval", recipe)
    scores = json.loads((out / "scores.json").read_text())
    assert scores["models"] == {"trained": served}
    assert scores["leaves"][KNOWLEDGE_LEAF]["evaluators"]["token_f1"]["trained"]["n"] == 3
    assert any(s.startswith("multiple choice: needs local models") and served in s for s in scores["skipped"])
    rows = [r for r in read_lines(out / "answers.jsonl") if r["evaluator"] == "knowledge_qa"]
    assert len(rows) == 3 and all(isinstance(r["answers"]["trained"], str) for r in rows)
    assert not any("This is a fake answer" in r["answers"]["trained"] for r in rows)  # the server answered
