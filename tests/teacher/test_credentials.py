"""Credentials in a teacher URL (`http://user:password@host/v1`) are sent as basic auth and appear in no
output file, log line or error message: a real `graft generate` against a real local server."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from graftlm.artifacts import read_json, write_json
from graftlm.generate import fake_responses
from graftlm.teacher.fake import FakeTeacher
from graftlm.testing.http import openai_handler, scripted_server
from graftlm.testing.server import free_port
from graftlm.testing.taxonomy import build_taxonomy

SRC = Path(__file__).resolve().parents[2] / "src"
PASSWORD = "s3cret-Pa55"


def skill_taxonomy(root: Path) -> Path:
    return build_taxonomy(root, {"compositional_skills/writing/polite": {
        "version": 3, "created_by": "tests", "task_description": "Write polite requests.",
        "seed_examples": [{"question": f"Make this polite, number {i}, close the door.",
                           "answer": f"Could you please close the door, number {i}?"} for i in range(5)]}})


def graft(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "GRAFTLM_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "graftlm", "-vv", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_generate_through_a_url_with_credentials_stores_and_logs_none(tmp_path: Path) -> None:
    tax = skill_taxonomy(tmp_path / "tax")
    out = tmp_path / "gen"
    with scripted_server(openai_handler(FakeTeacher([fake_responses.respond]))) as (base, received):
        url = base.replace("http://", f"http://graft-user:{PASSWORD}@") + "/v1"
        proc = graft("generate", str(tax), "--out", str(out), "--teacher", url, "--samples-per-leaf", "3",
                     home=tmp_path / "home")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    expected = "Basic " + base64.b64encode(f"graft-user:{PASSWORD}".encode()).decode()
    assert received and all(r.headers.get("authorization") == expected for r in received)
    assert base in log  # the endpoint is logged, without its credentials
    files = [p for p in out.rglob("*") if p.is_file()]
    assert (out / "manifest.json") in files and (out / "train.jsonl") in files
    for path in files:
        data = path.read_bytes()
        assert PASSWORD.encode() not in data and b"graft-user" not in data, path
    assert PASSWORD not in log and "graft-user" not in log


def test_a_refused_url_with_credentials_is_shown_without_them(tmp_path: Path) -> None:
    tax = skill_taxonomy(tmp_path / "tax")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"teacher:\n  model: http://graft-user:{PASSWORD}@127.0.0.1:{free_port()}/v1\n"
                      "  max_retries: 1\n  backoff_base_s: 0.01\n", encoding="utf-8")
    proc = graft("generate", str(tax), "--out", str(tmp_path / "gen"), "--recipe", str(recipe),
                 home=tmp_path / "home")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 3 and "cannot connect to http://127.0.0.1:" in log and "Traceback" not in log
    assert PASSWORD not in log and "graft-user" not in log


@pytest.mark.parametrize("url", ["http://u:pw@host:8000/v1", "https://u@host/v1", "http://u:p%40w@10.0.0.1/v1"])
def test_manifests_never_hold_url_credentials(tmp_path: Path, url: str) -> None:
    write_json(tmp_path / "manifest.json", {"teacher": {"model": f"{url},http://plain:8000/v1"}})
    stored = read_json(tmp_path / "manifest.json")["teacher"]["model"]
    assert "@" not in stored and stored.endswith(",http://plain:8000/v1") and "/v1," in stored
