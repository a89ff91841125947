"""The example taxonomy is valid, and its documents repository is built the same way `graft run` builds it."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from graftlm.taxonomy.docrepo import build_docs_repo, prepare_local_documents

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "taxonomy"
KNOWLEDGE_QNA = EXAMPLE / "knowledge" / "geography" / "islands" / "vescary" / "qna.yaml"


def test_example_taxonomy_is_valid_and_has_the_three_leaf_types() -> None:
    from graftlm.taxonomy.load import load_taxonomy
    from graftlm.taxonomy.validate import validate_paths

    reports = validate_paths([EXAMPLE])
    assert len(reports) == 3
    assert all(r.valid and not r.errors and not r.warnings for r in reports), [r.errors for r in reports]
    types = sorted(leaf.type.value for leaf in load_taxonomy(EXAMPLE))
    assert types == ["freeform_skill", "grounded_skill", "knowledge"]


def test_docs_repo_is_deterministic_and_matches_the_qna_commit(tmp_path: Path) -> None:
    commit = yaml.safe_load(KNOWLEDGE_QNA.read_text())["document"]["commit"]
    a = build_docs_repo(ROOT / "examples" / "documents", tmp_path / "a" / "documents-repo")
    b = build_docs_repo(ROOT / "examples" / "documents", tmp_path / "b" / "documents-repo")
    assert a == b == commit


def test_missing_docs_repo_is_built_and_documents_load(tmp_path: Path) -> None:
    """`graft run` builds `documents-repo` from `documents/` when missing; both documents then load."""
    from graftlm.taxonomy.documents import load_leaf_documents
    from graftlm.taxonomy.load import load_taxonomy

    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLE, copy / "taxonomy")
    shutil.copytree(ROOT / "examples" / "documents", copy / "documents")
    built = prepare_local_documents(copy / "taxonomy")
    assert built == [(copy / "documents-repo").resolve()]
    assert prepare_local_documents(copy / "taxonomy") == []  # already there: nothing to do
    leaf = next(leaf for leaf in load_taxonomy(copy / "taxonomy") if leaf.is_knowledge)
    docs = load_leaf_documents(leaf, cache_dir=tmp_path / "cache")
    assert sorted(d.format for d in docs) == ["markdown", "pdf"]
    text = " ".join(d.text for d in docs)
    # Facts from both documents, enough for 30+ questions.
    for fact in ("Mount Tarrow", "1,377", "Port Anselm", "Maud Ostrey", "Lantern Council", "vesk", "pennets",
                 "Tobias Venn", "skerry stew", "rope-racing", "skellow", "Ostrey College", "1898"):
        assert fact in text, fact
