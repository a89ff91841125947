"""Validation rules: InstructLab's schemas, with the line, column and field of every finding."""

from __future__ import annotations

from pathlib import Path

from graftlm.taxonomy.validate import Issue, validate_file, validate_paths
from graftlm.testing.taxonomy import write

from .conftest import SKILL, knowledge_yaml


def leaf(tmp_path: Path, text: str | bytes, branch: str = "compositional_skills") -> Path:
    return write(tmp_path / branch / "a" / "b" / "qna.yaml", text)


def only_error(report) -> Issue:
    assert len(report.errors) == 1, report.errors
    return report.errors[0]


def test_valid_skill_and_knowledge(tmp_path: Path) -> None:
    r = validate_file(leaf(tmp_path, SKILL))
    assert r.valid and r.errors == [] and r.warnings == []
    assert (r.schema, r.version) == ("compositional_skills", 3)
    k = validate_file(leaf(tmp_path, knowledge_yaml(), "knowledge"))
    assert k.valid, k.errors
    assert k.schema == "knowledge"


def test_too_few_seed_examples_names_count_line_and_field(tmp_path: Path) -> None:
    text = SKILL.split("  - question: \"Make this polite: Call me.\"")[0]  # 3 seeds
    e = only_error(validate_file(leaf(tmp_path, text)))
    assert e.field == "seed_examples"
    assert e.message == "seed_examples has 3 items; at least 5 are required"
    assert (e.line, e.column) == (5, 3)  # the first item of the list


def test_wrong_type_points_at_the_value(tmp_path: Path) -> None:
    text = SKILL.replace("answer: Could you please call me?", "answer: 42")
    e = only_error(validate_file(leaf(tmp_path, text)))
    assert e.field == "seed_examples[3].answer"
    assert (e.line, e.column) == (12, 13)
    assert "must be text" in e.message and "42" in e.message and "quote" in e.message


def test_empty_value_and_missing_field(tmp_path: Path) -> None:
    text = SKILL.replace("answer: Could you please move the car?", "answer:")
    text = text.replace("task_description: Rewrite a blunt command as a polite request.\n", "")
    r = validate_file(leaf(tmp_path, text))
    by_field = {e.field: e for e in r.errors}
    assert set(by_field) == {"task_description", "seed_examples[4].answer"}
    assert "required" in by_field["task_description"].message
    assert by_field["task_description"].line == 1
    assert "empty" in by_field["seed_examples[4].answer"].message
    assert by_field["seed_examples[4].answer"].line == 13


def test_unknown_key_points_at_the_key(tmp_path: Path) -> None:
    text = SKILL.replace("    answer: Could you please turn it down?\n",
                         "    answer: Could you please turn it down?\n    attribution: me\n")
    e = only_error(validate_file(leaf(tmp_path, text)))
    assert e.field == "seed_examples[2].attribution"
    assert (e.line, e.column) == (11, 5)
    assert "unknown field `attribution`" in e.message and "question" in e.message


def test_duplicate_items_and_duplicate_keys(tmp_path: Path) -> None:
    dup_item = SKILL + '  - question: "Make this polite: Close the door."\n    answer: Could you please close the door?\n'
    e = only_error(validate_file(leaf(tmp_path, dup_item)))
    assert e.field == "seed_examples[5]" and "repeats seed_examples[0]" in e.message and e.line == 15
    dup_key = SKILL.replace("created_by: tester\n", "created_by: tester\ncreated_by: other\n")
    e = only_error(validate_file(leaf(tmp_path, dup_key)))
    assert e.line == 3 and "appears twice" in e.message and "line 2" in e.message


def test_versions(tmp_path: Path) -> None:
    v1 = "created_by: me\ntask_description: t\nseed_examples:\n  - question: q\n    answer: a\n"
    assert validate_file(leaf(tmp_path, v1)).valid  # v1 skills: one seed is enough
    old_knowledge = knowledge_yaml().replace("version: 3", "version: 2")
    e = only_error(validate_file(leaf(tmp_path, old_knowledge, "knowledge")))
    assert e.field == "version" and e.line == 1 and "minimum is 3" in e.message
    e = only_error(validate_file(leaf(tmp_path, SKILL.replace("version: 3", "version: 24"))))
    assert e.field == "version" and "not supported" in e.message and "version: 3" in e.message


def test_schema_follows_the_branch(tmp_path: Path) -> None:
    # a knowledge file under compositional_skills is checked as a skill: domain etc. are unknown
    r = validate_file(leaf(tmp_path, knowledge_yaml(), "compositional_skills"))
    assert not r.valid and r.schema == "compositional_skills"
    # outside knowledge/ and compositional_skills/, a `document` key picks the knowledge schema
    r = validate_file(leaf(tmp_path, knowledge_yaml(), "foundational_skills"))
    assert r.valid and r.schema == "knowledge"


def test_yaml_syntax_error_has_position_and_advice(tmp_path: Path) -> None:
    text = "version: 3\ncreated_by: me\ntask_description: Answer this: it is bad\n"
    e = only_error(validate_file(leaf(tmp_path, text)))
    assert (e.line, e.column) == (3, 30)  # the second colon
    assert e.message.startswith("YAML syntax error") and "quote" in e.message


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    e = only_error(validate_file(leaf(tmp_path, "")))
    assert "empty" in e.message
    e = only_error(validate_file(leaf(tmp_path, "# only a comment\n")))
    assert "empty" in e.message
    e = only_error(validate_file(leaf(tmp_path, "- a\n- b\n")))
    assert "top level must be a mapping" in e.message and "a list" in e.message


def test_lint_findings_are_warnings(tmp_path: Path) -> None:
    text = SKILL.replace("created_by: tester\n", "created_by: tester   \n").rstrip("\n")
    r = validate_file(leaf(tmp_path, text))
    assert r.valid
    assert [(w.line, w.column) for w in r.warnings] == [(2, 19), (14, 43)]
    assert "trailing spaces" in r.warnings[0].message
    assert "newline" in r.warnings[1].message


def test_name_must_be_qna_yaml(tmp_path: Path) -> None:
    e = only_error(validate_file(write(tmp_path / "compositional_skills" / "x" / "skill.yaml", SKILL)))
    assert "qna.yaml" in e.message


def test_validate_paths_expands_folders(tmp_path: Path, taxonomy: Path) -> None:
    reports = validate_paths([taxonomy, taxonomy / "knowledge" / "geography" / "vescary" / "qna.yaml",
                              tmp_path / "missing", tmp_path / "taxonomy" / "knowledge" / "geography" / "vescary"])
    assert len(reports) == 4 + 1 + 1 + 1
    assert [r.valid for r in reports].count(False) == 1
    missing = next(r for r in reports if not r.valid)
    assert missing.path == tmp_path / "missing" and "does not exist" in missing.errors[0].message
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    (r,) = validate_paths([empty_dir])
    assert not r.valid and "no qna.yaml" in r.errors[0].message


def test_report_json_shape(tmp_path: Path) -> None:
    d = validate_file(leaf(tmp_path, SKILL.replace("version: 3", "version: 3  "))).to_dict()
    assert set(d) == {"path", "valid", "errors", "warnings"}
    assert d["valid"] is True and d["warnings"][0] == {"line": 1, "column": 11, "field": "",
                                                      "message": "trailing spaces; remove them"}
