"""`graft run` reads taxonomy files only through the validator, writes nothing on a dry run, builds document
repositories only inside the taxonomy or beside it, and never deletes a user's folders."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from graftlm.errors import DocumentError
from graftlm.taxonomy.docrepo import build_docs_repo, prepare_local_documents

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples"


def skill_taxonomy(root: Path) -> Path:
    """The example taxonomy's skill leaves (no documents needed)."""
    shutil.copytree(EXAMPLE / "taxonomy" / "compositional_skills", root / "compositional_skills")
    return root


def fake_recipe(path: Path, **train: object) -> Path:
    data: dict[str, object] = {"teacher": {"model": "fake"}}
    if train:
        data["train"] = train
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def graft(*args: object, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRAFTLM_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "graftlm", *map(str, args)], env=env, text=True,
                          capture_output=True, timeout=timeout)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_alias_bomb_in_a_knowledge_leaf_fails_a_dry_run_fast_with_a_clear_error(tmp_path: Path) -> None:
    leaf = tmp_path / "tax" / "knowledge" / "bomb"
    leaf.mkdir(parents=True)
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    text = "version: 3\ncreated_by: me\ndomain: d\n" + "\n".join(levels) + "\ndocument: {repo: bomb-repo, commit: abc}\n"
    (leaf / "qna.yaml").write_text(text, encoding="utf-8")
    (leaf / "bomb").mkdir()  # a source folder the document repo would be built from
    done = graft("run", tmp_path / "tax", "--recipe", fake_recipe(tmp_path / "r.yaml"), "--out", tmp_path / "out",
                 "--dry-run", home=tmp_path / "home", timeout=60)
    assert done.returncode != 0
    assert str(leaf / "qna.yaml") in done.stderr and "alias" in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert not (leaf / "bomb-repo").exists() and not (tmp_path / "out").exists()


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLE / "taxonomy", copy / "taxonomy")
    shutil.copytree(EXAMPLE / "documents", copy / "documents")
    recipe = fake_recipe(tmp_path / "r.yaml")
    before = tree(tmp_path)
    done = graft("run", copy / "taxonomy", "--recipe", recipe, "--out", tmp_path / "out", "--dry-run",
                 home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert "geography->islands->vescary" in done.stdout and "ETA:" in done.stdout
    assert tree(tmp_path) == before  # no documents-repo, no run folder, no clone cache, no calibration file


def test_document_repos_are_built_only_inside_the_taxonomy_or_beside_it(tmp_path: Path) -> None:
    tax = tmp_path / "work" / "taxonomy"
    leaf = tax / "knowledge" / "topic"
    leaf.mkdir(parents=True)
    elsewhere = tmp_path / "private"
    (elsewhere / "secrets").mkdir(parents=True)
    (elsewhere / "secrets" / "key.md").write_text("secret\n", encoding="utf-8")
    qna = yaml.safe_load((EXAMPLE / "taxonomy" / "knowledge" / "geography" / "islands" / "vescary" / "qna.yaml")
                         .read_text(encoding="utf-8"))
    qna["document"]["repo"] = str(elsewhere / "secrets-repo")
    (leaf / "qna.yaml").write_text(yaml.safe_dump(qna, sort_keys=False), encoding="utf-8")
    with pytest.raises(DocumentError) as err:
        prepare_local_documents(tax)
    assert err.value.location is not None and err.value.location.field == "document.repo"
    assert not (elsewhere / "secrets-repo").exists()

    # Beside the taxonomy (where the example keeps its documents) and inside it: built.
    for repo in (tmp_path / "work" / "docs-repo", tax / "knowledge" / "topic" / "docs-repo"):
        shutil.copytree(EXAMPLE / "documents", repo.with_name("docs"), dirs_exist_ok=True)
        qna["document"]["repo"] = str(repo)
        (leaf / "qna.yaml").write_text(yaml.safe_dump(qna, sort_keys=False), encoding="utf-8")
        assert prepare_local_documents(tax) == [repo.resolve()]


def test_the_git_copy_keeps_file_modes(tmp_path: Path) -> None:
    src = tmp_path / "docs"
    src.mkdir()
    (src / "private.md").write_text("# private\n", encoding="utf-8")
    (src / "private.md").chmod(0o600)
    (src / "public.md").write_text("# public\n", encoding="utf-8")
    (src / "public.md").chmod(0o644)
    build_docs_repo(src, tmp_path / "docs-repo")
    assert stat.S_IMODE((tmp_path / "docs-repo" / "private.md").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "docs-repo" / "public.md").stat().st_mode) == 0o644


def test_a_bad_training_setting_fails_graft_run_before_generation(tmp_path: Path) -> None:
    recipe = fake_recipe(tmp_path / "r.yaml", max_seq_len=2048, max_tokens_per_row=1024)
    done = graft("run", skill_taxonomy(tmp_path / "tax"), "--recipe", recipe, "--out", tmp_path / "out",
                 home=tmp_path / "home")
    assert done.returncode == 2
    line = 1 + next(i for i, text in enumerate(recipe.read_text().splitlines()) if "max_seq_len" in text)
    assert f"{recipe}:{line}" in done.stderr and "train.max_seq_len" in done.stderr
    assert "max_tokens_per_row" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    checked = graft("config", recipe, home=tmp_path / "home")
    assert checked.returncode == 2 and "train.max_seq_len" in checked.stderr


def test_a_non_empty_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "my-project"
    for name in ("validate", "generate", "train"):
        (out / name).mkdir(parents=True)
        (out / name / "notes.txt").write_text(f"my {name} notes\n", encoding="utf-8")
    before = {p: p.read_text() for p in out.rglob("*.txt")}
    for dry in ((), ("--dry-run",)):
        done = graft("run", skill_taxonomy(tmp_path / f"tax{len(dry)}"), "--recipe", fake_recipe(tmp_path / "r.yaml"),
                     "--out", out, *dry, home=tmp_path / "home")
        assert done.returncode == 2
        assert "not a graftlm run directory" in done.stderr and "Traceback" not in done.stderr
    assert {p: p.read_text() for p in out.rglob("*.txt")} == before
    assert not (out / "run.json").exists()


def test_user_folders_in_a_run_directory_are_never_deleted(tmp_path: Path) -> None:
    """A run directory (it has run.json) with a stage folder graftlm did not record and that has no manifest:
    the run stops before touching it."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"stages": {}}', encoding="utf-8")
    (out / "validate").mkdir()
    (out / "validate" / "mine.txt").write_text("keep me\n", encoding="utf-8")
    done = graft("run", skill_taxonomy(tmp_path / "tax"), "--recipe", fake_recipe(tmp_path / "r.yaml"), "--out", out,
                 home=tmp_path / "home")
    assert done.returncode != 0
    assert str(out / "validate") in done.stderr and "does not delete" in done.stderr
    assert (out / "validate" / "mine.txt").read_text() == "keep me\n"


def test_graftlm_stage_output_is_cleared_when_inputs_change(tmp_path: Path) -> None:
    """What run.json records, or what carries a manifest, is graftlm's: cleared for new inputs, except the
    call cache."""
    from graftlm.config import recipe_from_dict
    from graftlm.run import STAGE_TABLE, RunContext, StagePlan, _clear_stage

    stages = {s.name: s for s in STAGE_TABLE}
    out = tmp_path / "run"
    for name in ("generate", "mix"):
        (out / name / "sub").mkdir(parents=True)
        (out / name / "sub" / "old.jsonl").write_text("{}\n", encoding="utf-8")
    (out / "generate" / "calls.sqlite").write_bytes(b"cache")
    (out / "mix" / "manifest.json").write_text("{}", encoding="utf-8")
    ctx = RunContext(tmp_path, recipe_from_dict({}), out, [], {"stages": {"generate": {"input_hash": "old"}}})
    for name in ("generate", "mix"):  # generate: recorded in run.json; mix: not recorded, has a manifest
        _clear_stage(stages[name], StagePlan(name, out / name, "new", True, "inputs changed"), ctx)
    assert tree(out / "generate") == ["calls.sqlite"]
    assert tree(out / "mix") == []


def test_a_changed_exam_file_reruns_the_eval_stage(tmp_path: Path) -> None:
    """`eval.questions` names a file: its contents, not only its path, are the eval stage's inputs."""
    from graftlm.config import recipe_from_dict
    from graftlm.run import STAGE_TABLE, RunContext, stage_inputs

    eval_stage = next(s for s in STAGE_TABLE if s.name == "eval")
    out = tmp_path / "run"
    for up in eval_stage.upstream:
        (out / up).mkdir(parents=True)
        (out / up / "manifest.json").write_text("{}", encoding="utf-8")
    exam = tmp_path / "exam.jsonl"
    ctx = RunContext(tmp_path, recipe_from_dict({"eval": {"questions": str(exam)}}), out)
    hashes = []
    for text in ('{"question": "Q?", "answer": "A"}\n', '{"question": "Q?", "answer": "B"}\n'):
        exam.write_text(text, encoding="utf-8")
        hashes.append(stage_inputs(eval_stage, ctx))
    assert hashes[0] is not None and hashes[0] != hashes[1]
