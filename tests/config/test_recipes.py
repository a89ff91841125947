"""Every shipped recipe loads and names the command that runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftlm.config import load_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


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
