"""`graft taxonomy validate` and `graft taxonomy show` through the real command-line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graftlm.cli import main
from graftlm.testing.taxonomy import write

from .conftest import GROUNDED, SKILL


def test_validate_json_and_exit_codes(taxonomy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["taxonomy", "validate", "--json", str(taxonomy)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 4 and all(r["valid"] for r in out)
    bad = write(taxonomy / "compositional_skills" / "bad" / "qna.yaml",
                SKILL.replace("created_by: tester", "created_by:") + "extra: 1   \n")
    assert main(["taxonomy", "validate", "--json", str(bad), str(taxonomy / "knowledge")]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [r["valid"] for r in out] == [False, True]
    report = out[0]
    assert set(report) == {"path", "valid", "errors", "warnings"} and report["path"] == str(bad)
    assert {(e["line"], e["column"], e["field"]) for e in report["errors"]} == {(2, 12, "created_by"), (15, 1, "extra")}
    assert all(set(e) == {"line", "column", "field", "message"} for e in report["errors"] + report["warnings"])
    assert report["warnings"][0]["line"] == 15


def test_validate_human_output(taxonomy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(taxonomy / "compositional_skills" / "bad" / "qna.yaml", SKILL.split("  - question")[0] + "  - question: q\n    answer: a\n")
    assert main(["taxonomy", "validate", str(taxonomy)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}:5:3: error: seed_examples: seed_examples has 1 item; at least 5 are required" in captured.out
    assert "5 file(s): 4 valid, 1 invalid, 0 with warnings" in captured.err


def test_strict_makes_instructlabs_yamllint_errors_errors(taxonomy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leaf = write(taxonomy / "compositional_skills" / "writing" / "polite" / "qna.yaml",
                 SKILL.replace("created_by: tester", "created_by: tester  ").rstrip("\n"))
    assert main(["taxonomy", "validate", str(leaf)]) == 0
    default = capsys.readouterr()
    assert f"{leaf}:2:19: warning: trailing spaces; remove them" in default.out
    assert "1 file(s): 1 valid, 0 invalid, 1 with warnings" in default.err
    assert main(["taxonomy", "validate", "--strict", str(leaf)]) == 1
    strict = capsys.readouterr()
    assert f"{leaf}:2:19: error: trailing spaces (yamllint rule trailing-spaces; InstructLab rejects" in strict.out
    assert f"{leaf}:14:43: error: no new line character at the end of file (yamllint rule new-line-at-end-of-file" \
        in strict.out
    assert "1 file(s): 0 valid, 1 invalid, 0 with warnings" in strict.err
    assert main(["taxonomy", "validate", "--strict", "--json", str(taxonomy / "knowledge")]) == 0
    assert [r["valid"] for r in json.loads(capsys.readouterr().out)] == [True]


def test_show_tree_counts_and_guidance(taxonomy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long_context = " ".join(["word"] * 520)
    write(taxonomy / "compositional_skills" / "grounded" / "long" / "qna.yaml",
          GROUNDED.replace("The library closes for 3 weeks in July for a new roof.", long_context))
    broken = write(taxonomy / "compositional_skills" / "broken" / "qna.yaml", "version: 3\n")
    assert main(["taxonomy", "show", str(taxonomy)]) == 1  # an invalid file fails show as it fails validate
    out = capsys.readouterr().out
    assert "compositional_skills/\n  broken  [INVALID: 3 error(s)]" in out
    assert f"      ! {broken}:1:1: created_by: " in out  # each error listed under the invalid leaf
    assert "  grounded/\n    long  [grounded_skill  5 seeds  5 Q&A  " in out
    assert "OVER GUIDANCE" in out and "! seed_examples[2].context has 520 words; keep it under 500" in out
    assert "    polite  [freeform_skill  5 seeds  5 Q&A  58 words]" in out
    assert "vescary  [knowledge  5 seeds  15 Q&A  " in out
    assert "5 leaves (1 knowledge, 2 freeform skill, 2 grounded skill), 1 over the size guidance, 1 invalid" in out
    assert main(["taxonomy", "show", "--json", str(taxonomy)]) == 1
    stats = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert stats["compositional_skills->grounded->long"]["max_context_words"] == 520
    bad = stats["compositional_skills->broken"]
    assert bad["valid"] is False and bad["path"] == str(broken) and len(bad["errors"]) == 3
    assert stats["compositional_skills->grounded->long"]["valid"] is True
    assert stats["compositional_skills->writing->polite"]["seeds"] == 5


def test_skill_leaf_total_word_guidance(taxonomy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long_answer = " ".join(["word"] * 240)  # under the per-answer limit, but 5 x 240 + contexts...
    text = SKILL
    for a in ["close the door", "send the report", "turn it down", "call me", "move the car"]:
        text = text.replace(f"Could you please {a}?", f"{long_answer} {a}")
    text = text.replace("    answer:", "    context: " + " ".join(["ctx"] * 230) + "\n    answer:")
    write(taxonomy / "compositional_skills" / "writing" / "polite" / "qna.yaml", text)
    assert main(["taxonomy", "show", "--json", str(taxonomy)]) == 0
    stats = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    polite = stats["compositional_skills->writing->polite"]
    assert polite["words"] > 2300 and polite["type"] == "grounded_skill"
    assert polite["flags"] == [f"the seed examples have {polite['words']} words in total; keep a skill leaf under "
                               "about 2300 (they all go into one teacher prompt)"]


def test_missing_taxonomy_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["taxonomy", "show", str(tmp_path / "nope")]) == 2
    assert "taxonomy folder not found" in capsys.readouterr().err
