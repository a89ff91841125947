"""Knowledge documents from real git repositories: clone at a commit into a cache, glob, extract text."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from graftlm.errors import DocumentError
from graftlm.taxonomy.documents import load_leaf_documents, resolve_repo
from graftlm.taxonomy.load import parse_leaf
from graftlm.testing.taxonomy import GIT_ENV, commit_all, init_repo, write

from .conftest import knowledge_yaml

MD = """---
title: Vescary
---
# The Isle of Vescary

Vescary lies 212 kilometres west of Callowford.
"""


def make_pdf(path: Path, text: str) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 10, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


@pytest.fixture(autouse=True)
def _git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GRAFTLM_HOME", str(tmp_path / "home"))


@pytest.fixture
def docs_repo(tmp_path: Path) -> tuple[Path, str]:
    repo = init_repo(tmp_path / "docs-repo")
    write(repo / "vescary.md", MD)
    make_pdf(repo / "pdf" / "economy.pdf", "The economy of Vescary rests on fishing and wool.")
    write(repo / "notes" / "skip.bin", b"\x00\x01")
    return repo, commit_all(repo, "docs")


def knowledge_leaf(tmp_path: Path, repo: str, commit: str, patterns: tuple[str, ...] = ("*.md", "pdf/*.pdf")):
    path = write(tmp_path / "tax" / "knowledge" / "geo" / "vescary" / "qna.yaml",
                 knowledge_yaml(repo=repo, commit=commit, patterns=patterns))
    return parse_leaf(path, tmp_path / "tax")


def test_markdown_and_pdf_from_a_relative_local_repo(tmp_path: Path, docs_repo: tuple[Path, str]) -> None:
    repo, sha = docs_repo
    leaf = knowledge_leaf(tmp_path, "../../../../docs-repo", sha)
    docs = load_leaf_documents(leaf, cache_dir=tmp_path / "cache")
    assert [(d.path, d.format) for d in docs] == [("vescary.md", "markdown"), ("pdf/economy.pdf", "pdf")]
    assert docs[0].text.startswith("# The Isle of Vescary") and "title:" not in docs[0].text
    assert "fishing and wool" in docs[1].text
    assert docs[1].sha256 == hashlib.sha256((repo / "pdf" / "economy.pdf").read_bytes()).hexdigest()
    assert docs[0].commit == sha


def test_clone_is_cached_and_reused(tmp_path: Path, docs_repo: tuple[Path, str]) -> None:
    repo, sha = docs_repo
    leaf = knowledge_leaf(tmp_path, str(repo), sha)
    first = load_leaf_documents(leaf)  # default cache: GRAFTLM_HOME/repos
    cache = tmp_path / "home" / "repos"
    (entry,) = [p for p in cache.iterdir()]
    marker = entry / "reused-marker"
    marker.write_text("x")
    shutil.rmtree(repo)  # the source is gone: only the cached clone can serve the second call
    second = load_leaf_documents(leaf)
    assert second == first
    assert [p for p in cache.iterdir()] == [entry] and marker.exists()


def test_each_commit_has_its_own_checkout_and_short_shas_work(tmp_path: Path, docs_repo: tuple[Path, str]) -> None:
    repo, sha1 = docs_repo
    write(repo / "later.md", "# Later\n\nAdded in the second commit.\n")
    sha2 = commit_all(repo, "more")
    cache = tmp_path / "cache"
    with pytest.raises(DocumentError) as info:
        load_leaf_documents(knowledge_leaf(tmp_path, str(repo), sha1, ("later.md",)), cache)
    assert info.value.location is not None and info.value.location.field == "document.patterns[0]"
    assert "matches no file" in info.value.message
    docs = load_leaf_documents(knowledge_leaf(tmp_path, str(repo), sha2[:8], ("later.md",)), cache)
    assert docs[0].text == "# Later\n\nAdded in the second commit.\n"


def test_unknown_commit(tmp_path: Path, docs_repo: tuple[Path, str]) -> None:
    repo, _ = docs_repo
    with pytest.raises(DocumentError) as info:
        load_leaf_documents(knowledge_leaf(tmp_path, str(repo), "b" * 40), tmp_path / "cache")
    assert info.value.location is not None and info.value.location.field == "document.commit"
    assert str(info.value.location.file).endswith("vescary/qna.yaml")
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]


@pytest.mark.parametrize("pattern", ["../*.md", "/etc/passwd", "~/x.md", ".git/config", "a/../../x.md"])
def test_patterns_that_escape_are_refused(tmp_path: Path, docs_repo: tuple[Path, str], pattern: str) -> None:
    repo, sha = docs_repo
    with pytest.raises(DocumentError) as info:
        load_leaf_documents(knowledge_leaf(tmp_path, str(repo), sha, ("*.md", pattern)), tmp_path / "cache")
    assert info.value.location is not None and info.value.location.field == "document.patterns[1]"


def test_symlink_out_of_the_repository_is_refused(tmp_path: Path, docs_repo: tuple[Path, str]) -> None:
    repo, _ = docs_repo
    secret = write(tmp_path / "secret.md", "# secret\n")
    (repo / "escape.md").symlink_to(secret)
    (repo / "inside.md").symlink_to("vescary.md")  # a link inside the repository is fine
    sha = commit_all(repo, "links")
    docs = load_leaf_documents(knowledge_leaf(tmp_path, str(repo), sha, ("inside.md",)), tmp_path / "cache")
    assert "Vescary" in docs[0].text
    with pytest.raises(DocumentError, match="symlink that leads outside") as info:
        load_leaf_documents(knowledge_leaf(tmp_path, str(repo), sha, ("*.md",)), tmp_path / "cache")
    assert info.value.location is not None and info.value.location.field == "document.patterns[0]"


@pytest.mark.parametrize("repo", [
    "ext::sh -c touch% /tmp/pwned", "file::/tmp/x", "fd::3", "-uhello", "--upload-pack=touch /tmp/x",
    "file:///tmp/x", "http://example.com/x.git", "ssh://-oProxyCommand=touch/x", "git::/tmp/x",
    "git@-oProxyCommand=x:repo", "git@host:-upload-pack=x",
])
def test_other_transports_are_refused(tmp_path: Path, repo: str) -> None:
    leaf = knowledge_leaf(tmp_path, f'"{repo}"', "a" * 40)
    with pytest.raises(DocumentError) as info:
        load_leaf_documents(leaf, tmp_path / "cache")
    assert info.value.location is not None and info.value.location.field == "document.repo"
    assert not Path("/tmp/pwned").exists()


def test_accepted_remote_forms(tmp_path: Path) -> None:
    for url in ["https://github.com/org/docs.git", "ssh://git@github.com/org/docs.git", "git@github.com:org/docs.git"]:
        assert resolve_repo(knowledge_leaf(tmp_path, url, "a" * 40)) == (url, False)


def test_unreadable_pdf_and_unknown_format(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "bad-repo")
    write(repo / "broken.pdf", b"%PDF-1.4 this is not really a pdf")
    write(repo / "data.csv", "a,b\n")
    sha = commit_all(repo, "bad")
    with pytest.raises(DocumentError, match="broken.pdf") as info:
        load_leaf_documents(knowledge_leaf(tmp_path, str(repo), sha, ("*.pdf",)), tmp_path / "cache")
    assert info.value.location is not None and info.value.location.field == "document.patterns[0]"
    with pytest.raises(DocumentError, match="neither Markdown nor PDF"):
        load_leaf_documents(knowledge_leaf(tmp_path, str(repo), sha, ("*.csv",)), tmp_path / "cache")
