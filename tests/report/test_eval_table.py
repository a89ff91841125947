"""One function turns scores.json into the eval table; the report and the exported model card show the same one."""

from __future__ import annotations

import json
from pathlib import Path

from graftlm.export import model_card
from graftlm.report import EVAL_TABLE_HEADER, eval_table, run_report
from tests.evaluate.eval_helpers import KNOWLEDGE_LEAF, make_run_dir


def _table_lines(md: str, header: str) -> list[str]:
    lines = md.splitlines()
    start = lines.index(header)
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_report_and_model_card_show_the_same_eval_table(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    scores = json.loads((run_dir / "eval" / "scores.json").read_text())
    rows = eval_table(scores)
    assert rows[0] == EVAL_TABLE_HEADER
    assert any(r[0] == KNOWLEDGE_LEAF and r[1] == "token_f1" for r in rows[1:])
    assert any(r[0] == "retention: MT-Bench" for r in rows[1:])
    header = "| " + " | ".join(EVAL_TABLE_HEADER) + " |"
    report_md = (run_report(run_dir) / "report.md").read_text()
    card = model_card(run_dir, tmp_path / "model")
    in_report, in_card = _table_lines(report_md, header), _table_lines(card, header)
    assert len(in_card) == len(rows) + 1  # header, separator, one line per row
    assert in_card == in_report
    assert card.startswith("---\nlibrary_name: transformers")


def test_card_without_scores_says_so(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    card = model_card(tmp_path / "run", tmp_path / "model")
    assert "(no evaluation found)" in card and "(no generate manifest found)" in card
