"""Evaluating a model behind a real OpenAI-compatible server (`graft serve` on a tiny model, over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from graftlm.config import recipe_from_dict
from graftlm.evaluate.run import run_eval
from graftlm.testing.server import ServerFailed, running_server

from .eval_helpers import KNOWLEDGE_LEAF, make_generate_dir, read_lines


@pytest.fixture(scope="module")
def served(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    try:
        with running_server(tiny_model, ["--device", "cpu", "--dtype", "float32"], env={"OMP_NUM_THREADS": "2"},
                            unset=["OPENAI_API_KEY"], log=log) as base:
            yield base + "/v1"
    except ServerFailed as e:
        pytest.fail(str(e))

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
