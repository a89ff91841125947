"""Every shipped recipe loads, names the command that runs it, and the example taxonomy is valid."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from graftlm.config import load_recipe
from graftlm.taxonomy.docrepo import build_docs_repo, prepare_local_documents

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
EXAMPLE = ROOT / "examples" / "taxonomy"
KNOWLEDGE_QNA = EXAMPLE / "knowledge" / "geography" / "islands" / "vescary" / "qna.yaml"


def test_the_five_recipes_ship() -> None:
    names = {p.name for p in RECIPES}
    assert {"cpu-demo.yaml", "single-gpu.yaml", "multi-gpu.yaml", "lab-paper.yaml", "stacked.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_loads_and_starts_with_its_command(path: Path) -> None:
    recipe = load_recipe(path)
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# ") and ("graft run" in first or "graftlm run" in first), first
    assert f"recipes/{path.name}" in first
    assert recipe.train.student


def test_lab_paper_and_stacked_follow_the_papers() -> None:
    lab = load_recipe(ROOT / "recipes" / "lab-paper.yaml")
    assert lab.mix.strategy == "phased" and lab.mix.skills_replay > 0 and lab.mix.knowledge_2_replay > 0
    assert lab.train.batch_size == 3840 and lab.train.schedule == "constant"
    assert lab.train.learning_rate <= 2e-5 and lab.train.warmup_steps >= 385
    stacked = load_recipe(ROOT / "recipes" / "stacked.yaml")
    assert stacked.mix.strategy == "stacked"
    # Same data: the generate and teacher sections match, so a copied lab run reuses its generate stage.
    assert stacked.generate == lab.generate and stacked.teacher == lab.teacher


def test_gpu_recipes_use_http_teachers() -> None:
    single = load_recipe(ROOT / "recipes" / "single-gpu.yaml")
    multi = load_recipe(ROOT / "recipes" / "multi-gpu.yaml")
    assert single.teacher.model.startswith("http")
    urls = multi.teacher.model.split(",")
    assert len(urls) > 1 and all(u.startswith("http") for u in urls)
    assert "torchrun" in (ROOT / "recipes" / "multi-gpu.yaml").read_text().splitlines()[0]


def test_cpu_demo_uses_the_embedded_model_everywhere() -> None:
    demo = load_recipe(ROOT / "recipes" / "cpu-demo.yaml")
    assert demo.teacher.model == "default" and demo.judge_or_teacher.model == "default"
    assert demo.train.student == "default"


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
