"""`graft report`: report.md and a self-contained report.html, rendered in real headless chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from graftlm.report import run_report
from tests.evaluate.eval_helpers import KNOWLEDGE_LEAF, make_run_dir

PLOTS = {"eval_leaves.png", "training.png", "checkpoints.png", "funnel.png"}


def test_full_report_answers_the_question_per_leaf(tmp_path: Path) -> None:
    out = run_report(make_run_dir(tmp_path / "run"))
    md = (out / "report.md").read_text()
    assert md.index("## Did the model learn your data?") < md.index("## Evaluation per leaf")
    learned = md.split("## Evaluation per leaf")[0]
    assert f"**{KNOWLEDGE_LEAF}** (knowledge): Yes, it learned" in learned
    assert "compositional_skills->writing->haiku** (skill): Not significant" in learned
    assert "MT-Bench, 6 questions): 6.000 -> 5.500, significantly worse" in learned
    assert "perplexity" in learned
    for name in PLOTS:
        assert f"]({name})" in md and (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # judge errors are reported, not hidden
    assert "base 1 (10%)" in md
    assert "| knowledge-1 | 40 | 320 |" in md and "step-30" in md
    assert "faithfulness: 40, relevance: 12" in md
    assert (out / "manifest.json").is_file()


def test_html_is_self_contained(tmp_path: Path) -> None:
    out = run_report(make_run_dir(tmp_path / "run"))
    page = (out / "report.html").read_text()
    srcs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in page and "http://" not in page and "https://" not in page
    assert {m for m in re.findall(r'data-plot="([^"]+)"', page)} == PLOTS
    for s in srcs:
        assert base64.b64decode(s.split(",", 1)[1])[:4] == b"\x89PNG"


@pytest.mark.parametrize("missing", ["generate", "train", "eval"])
def test_each_missing_input_is_named(tmp_path: Path, missing: str) -> None:
    parts = tuple(p for p in ("generate", "train", "eval") if p != missing)
    out = run_report(make_run_dir(tmp_path / "run", parts))
    md = (out / "report.md").read_text()
    expected = {"generate": "generate/manifest.json is missing", "train": "train/<phase>/metrics.jsonl is missing",
                "eval": "eval/scores.json is missing"}[missing]
    assert expected in md
    if missing == "eval":
        assert not (out / "eval_leaves.png").exists() or "eval_leaves.png" not in md


def test_empty_run_dir_still_gives_a_report(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    out = run_report(tmp_path / "run", tmp_path / "rep")
    md = (out / "report.md").read_text()
    assert md.count("is missing") == 3
    assert "<img" not in (out / "report.html").read_text()


def test_corrupt_inputs_count_as_missing(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    (run / "eval" / "scores.json").write_text("{not json")
    (run / "train" / "skills" / "metrics.jsonl").write_text("garbage\n{\"step\": 1}\n")
    md = (run_report(run) / "report.md").read_text()
    assert "eval/scores.json is missing" in md
    assert "No metrics.jsonl for phase(s) skills" in md


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _render(page: Path, tmp_path: Path) -> str:
    browser = _chromium()
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); the browser check is skipped")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=3000", "--dump-dom",
           page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _body_counts(dom: str) -> tuple[int, int]:
    m = re.search(r'<body[^>]*data-plots-total="(\d+)"[^>]*data-plots-loaded="(\d+)"', dom)
    assert m, "the page's load script did not run: " + dom[:300]
    return int(m.group(1)), int(m.group(2))


def test_chromium_renders_every_plot(tmp_path: Path) -> None:
    out = run_report(make_run_dir(tmp_path / "run"))
    dom = _render(out / "report.html", tmp_path)
    total, loaded = _body_counts(dom)
    assert total == 4 and loaded == 4
    assert "Did the model learn your data?" in dom


def test_chromium_check_catches_a_broken_plot(tmp_path: Path) -> None:
    out = run_report(make_run_dir(tmp_path / "run"))
    page = (out / "report.html").read_text()
    first = page.index("base64,") + len("base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(page[:first] + "AAAA" + page[first + 400:])
    total, loaded = _body_counts(_render(broken, tmp_path))
    assert total == 4 and loaded == 3


def test_judge_error_rate_is_stated_plainly(tmp_path: Path) -> None:
    md = (run_report(make_run_dir(tmp_path / "run")) / "report.md").read_text()
    learned = md.split("## Evaluation per leaf")[0]
    # one base knowledge judgment of 20 + 8 skill + 24 MT-Bench turn judgments is unparsable
    assert "wrote no parsable rating in 1 of 52 judgments (2%)" in learned


def test_examples_show_the_biggest_gains_first(tmp_path: Path) -> None:
    from graftlm.artifacts import write_jsonl

    run = make_run_dir(tmp_path / "run", ("eval",))
    rows = [{"evaluator": "knowledge_qa", "leaf": KNOWLEDGE_LEAF, "question": f"Question {i}?", "reference": f"ref {i}",
             "answers": {"base": f"base says {i}", "trained": f"trained | says {i}"},
             "judgments": {"trained": {"score": 8.0}},
             "metrics": {"base": {"token_f1": 0.1}, "trained": {"token_f1": 0.1 * i}}} for i in range(6)]
    write_jsonl(run / "eval" / "answers.jsonl", rows)
    md = (run_report(run) / "report.md").read_text()
    section = md.split("## Example answers")[1].split("## ")[0]
    assert section.index("Question 5?") < section.index("Question 4?") < section.index("Question 3?")
    assert "Question 2?" not in section
    assert "trained \\| says 5 [judge: 8]" in section
    (run / "eval" / "answers.jsonl").unlink()
    assert "## Example answers" not in (run_report(run) / "report.md").read_text()
