"""Loading leaves: names, types, seeds, selection by name, and errors for invalid files."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftlm.errors import TaxonomyError
from graftlm.taxonomy.load import load_taxonomy, parse_leaf, select_leaves
from graftlm.taxonomy.model import LeafType
from graftlm.testing.taxonomy import write

from .conftest import SKILL


def test_load_taxonomy_types_and_names(taxonomy: Path) -> None:
    leaves = load_taxonomy(taxonomy)
    by_name = {leaf.name: leaf for leaf in leaves}
    assert list(by_name) == sorted(by_name)
    assert {n: leaf.type for n, leaf in by_name.items()} == {
        "compositional_skills->grounded->summary": LeafType.GROUNDED_SKILL,
        "compositional_skills->writing->polite": LeafType.FREEFORM_SKILL,
        "foundational_skills->reasoning->logic": LeafType.FREEFORM_SKILL,
        "knowledge->geography->vescary": LeafType.KNOWLEDGE,
    }
    k = by_name["knowledge->geography->vescary"]
    assert k.branch == "knowledge" and k.version == 3 and k.created_by == "tester"
    assert len(k.knowledge_seeds) == 5 and len(k.knowledge_seeds[0].qas) == 3
    assert k.knowledge_seeds[0].qas[0].answer == "It lies 100 kilometres west."
    assert k.document is not None and k.document.patterns == ("*.md",) and k.document.commit == "a" * 40
    assert k.safe_name == "knowledge_geography_vescary"
    g = by_name["compositional_skills->grounded->summary"]
    assert g.skill_seeds[0].context == "The library closes for 1 weeks in July for a new roof."
    s = by_name["compositional_skills->writing->polite"]
    assert s.task_description.startswith("Rewrite") and s.skill_seeds[4].context is None
    assert s.path == taxonomy / "compositional_skills" / "writing" / "polite" / "qna.yaml"


def test_skill_seed_with_context_is_grounded_anywhere(tmp_path: Path) -> None:
    text = SKILL.replace("  - question: \"Make this polite: Close the door.\"",
                         "  - context: The door is open.\n    question: \"Make this polite: Close the door.\"")
    leaf = parse_leaf(write(tmp_path / "compositional_skills" / "x" / "qna.yaml", text), tmp_path)
    assert leaf.type is LeafType.GROUNDED_SKILL and leaf.name == "compositional_skills->x"


def test_attribution_file_is_read(taxonomy: Path) -> None:
    folder = taxonomy / "compositional_skills" / "writing" / "polite"
    write(folder / "attribution.txt", "Title of work: Polite requests\nLicense of the work: CC-BY-4.0\n")
    leaf = parse_leaf(folder)
    assert leaf.attribution == {"Title of work": "Polite requests", "License of the work": "CC-BY-4.0"}


def test_invalid_files_raise_with_positions(taxonomy: Path) -> None:
    write(taxonomy / "compositional_skills" / "bad" / "qna.yaml", SKILL.replace("answer: Could you please call me?", "answer:"))
    write(taxonomy / "knowledge" / "broken" / "qna.yaml", "version: 3\n  x: [\n")
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(taxonomy)
    text = str(info.value)
    assert "2 invalid taxonomy file(s)" in text
    assert "compositional_skills/bad/qna.yaml:12:12: seed_examples[3].answer:" in text
    assert "knowledge/broken/qna.yaml:2:" in text
    assert "graft taxonomy validate" in text


def test_empty_taxonomy_and_missing_root(tmp_path: Path) -> None:
    assert load_taxonomy(tmp_path) == []
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "nope")


def test_select_by_names(taxonomy: Path) -> None:
    leaves = select_leaves(taxonomy, names=["knowledge->geography->vescary", "compositional_skills/writing/polite"])
    assert [leaf.name for leaf in leaves] == ["compositional_skills->writing->polite", "knowledge->geography->vescary"]
    assert len(select_leaves(taxonomy)) == 4
    assert len(select_leaves(taxonomy, base="empty")) == 4
    with pytest.raises(TaxonomyError, match="no leaf named knowledge->nope") as info:
        select_leaves(taxonomy, names=["knowledge->nope"])
    assert "knowledge->geography->vescary" in str(info.value.hint)


def test_other_folders_are_not_leaves(taxonomy: Path) -> None:
    write(taxonomy / "technical_skills" / "x" / "qna.yaml", SKILL)
    write(taxonomy / "qna.yaml", SKILL)
    assert len(load_taxonomy(taxonomy)) == 4


def test_grounded_folder_without_contexts_is_freeform_with_a_warning(tmp_path: Path) -> None:
    from graftlm.taxonomy.validate import validate_file

    path = write(tmp_path / "compositional_skills" / "grounded" / "x" / "qna.yaml", SKILL)
    report = validate_file(path)
    assert report.valid and report.warnings[0].field == "seed_examples"
    assert "treated as a freeform skill" in report.warnings[0].message
    assert parse_leaf(path, tmp_path).type is LeafType.FREEFORM_SKILL
    mixed = SKILL.replace("  - question: \"Make this polite: Call me.\"",
                          "  - context: A phone call.\n    question: \"Make this polite: Call me.\"")
    report = validate_file(write(tmp_path / "compositional_skills" / "y" / "qna.yaml", mixed))
    assert report.valid and [w.field for w in report.warnings] == [f"seed_examples[{i}]" for i in (0, 1, 2, 4)]
    assert report.warnings[0].line == 5
