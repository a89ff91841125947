"""Leaves changed against a git base, in real git repositories built here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graftlm.cli import main
from graftlm.errors import TaxonomyError
from graftlm.taxonomy.diff import changed_leaves
from graftlm.taxonomy.load import select_leaves
from graftlm.testing.taxonomy import commit_all, git, init_repo, write

from .conftest import GROUNDED, SKILL, knowledge_yaml

LEAVES = {
    "committed": "compositional_skills/writing/committed/qna.yaml",
    "staged": "knowledge/geo/staged/qna.yaml",
    "unstaged": "compositional_skills/grounded/unstaged/qna.yaml",
    "deleted": "compositional_skills/writing/deleted/qna.yaml",
    "upstream": "compositional_skills/writing/upstream/qna.yaml",
    "untouched": "foundational_skills/math/untouched/qna.yaml",
}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone of an upstream taxonomy (kept in `tax/` of the repository) with every kind of change."""
    from graftlm.testing.taxonomy import GIT_ENV

    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    upstream = init_repo(tmp_path / "upstream")
    for key, rel in LEAVES.items():
        text = knowledge_yaml() if key == "staged" else GROUNDED if key == "unstaged" else SKILL
        write(upstream / "tax" / rel, text)
    commit_all(upstream, "taxonomy")
    git(tmp_path, "clone", "-q", str(upstream), "work")
    work = tmp_path / "work"
    # upstream moves on after the clone: not a change of ours
    write(upstream / "tax" / LEAVES["upstream"], SKILL.replace("tester", "upstream-person"))
    commit_all(upstream, "upstream edit")
    git(work, "fetch", "-q")
    tax = work / "tax"
    git(work, "checkout", "-q", "-b", "feature")
    write(tax / LEAVES["committed"], SKILL.replace("tester", "me"))
    git(work, "rm", "-q", str(tax / LEAVES["deleted"]))
    write(tax / "compositional_skills/writing/committed/attribution.txt", "Title: x\n")
    commit_all(work, "feature work")
    write(tax / LEAVES["staged"], knowledge_yaml().replace("Geography", "Islands"))
    git(work, "add", str(tax / LEAVES["staged"]))
    write(tax / LEAVES["unstaged"], GROUNDED.replace("tester", "me"))
    write(tax / "compositional_skills/writing/new/qna.yaml", SKILL)  # untracked
    write(tax / "technical_skills/x/qna.yaml", SKILL)  # not a taxonomy branch
    write(work / "README.md", "changed\n")
    return tax


def rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_changed_leaves_like_instructlab(work: Path) -> None:
    assert rel(changed_leaves(work, "origin/main"), work) == sorted([
        LEAVES["committed"], LEAVES["staged"], LEAVES["unstaged"], "compositional_skills/writing/new/qna.yaml",
    ])
    # against the feature branch itself only the uncommitted work counts
    assert rel(changed_leaves(work, "feature"), work) == sorted([
        LEAVES["staged"], LEAVES["unstaged"], "compositional_skills/writing/new/qna.yaml",
    ])
    # a commit sha works as a base; `empty` means every leaf present
    sha = git(work, "rev-parse", "HEAD")
    assert len(changed_leaves(work, sha)) == 3
    assert len(changed_leaves(work, "empty")) == 6  # 5 left after the deletion, plus the new one


def test_select_leaves_with_base(work: Path) -> None:
    leaves = select_leaves(work, base="origin/main")
    assert [leaf.name for leaf in leaves] == [
        "compositional_skills->grounded->unstaged", "compositional_skills->writing->committed",
        "compositional_skills->writing->new", "knowledge->geo->staged",
    ]
    assert leaves[1].created_by == "me"


def test_repository_root_is_the_taxonomy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from graftlm.testing.taxonomy import GIT_ENV

    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    repo = init_repo(tmp_path / "tax")
    assert rel(changed_leaves(repo, "empty"), repo) == []
    write(repo / "knowledge/a/qna.yaml", knowledge_yaml())  # no commit yet: everything is untracked
    with pytest.raises(TaxonomyError, match="cannot find the git ref"):
        changed_leaves(repo, "main")
    base = commit_all(repo, "first")
    write(repo / "compositional_skills/b/qna.yaml", SKILL)
    assert rel(changed_leaves(repo, base), repo) == ["compositional_skills/b/qna.yaml"]
    assert rel(changed_leaves(repo, "main"), repo) == ["compositional_skills/b/qna.yaml"]


def test_bad_bases(tmp_path: Path, work: Path) -> None:
    with pytest.raises(TaxonomyError, match="cannot find the git ref 'origin/nope'") as info:
        changed_leaves(work, "origin/nope")
    assert "--base empty" in str(info.value.hint)
    with pytest.raises(TaxonomyError, match="invalid git ref"):
        changed_leaves(work, "--output=/tmp/x")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(TaxonomyError, match="not inside a git repository"):
        changed_leaves(plain, "origin/main")


def test_cli_diff_lists_and_validates(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["taxonomy", "diff", "--base", "origin/main", "--json", str(work)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [leaf["name"] for leaf in out["leaves"]] == [
        "compositional_skills->grounded->unstaged", "compositional_skills->writing->committed",
        "compositional_skills->writing->new", "knowledge->geo->staged",
    ]
    write(work / "compositional_skills/writing/new/qna.yaml", SKILL.replace("version: 3", "version: [3]"))
    assert main(["taxonomy", "diff", "--base", "origin/main", str(work)]) == 1
    captured = capsys.readouterr()
    assert "4 leaves changed against origin/main" in captured.out
    assert "compositional_skills->writing->new  (INVALID)" in captured.out
    assert "new/qna.yaml:1:10: error: version:" in captured.out
    assert main(["taxonomy", "diff", "--base", "origin/nope", str(work)]) == 2
