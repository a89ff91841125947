"""Local document repositories: a git repository `NAME-repo` built from a plain folder `NAME/`.

The shipped example keeps its documents as plain files (`examples/documents/`) and its knowledge leaf
names `documents-repo` at a fixed commit. `prepare_local_documents` builds such missing repositories
before a run, deterministically (fixed author, dates and message), so the commit matches the leaf's.

Only repositories inside the taxonomy, or directly beside it (where the example keeps them), are
built: a leaf cannot make graftlm copy a folder from anywhere else on disk. Leaves are read through
the validator (`load_taxonomy`), never with a plain YAML load.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from graftlm.artifacts import atomic_dir
from graftlm.errors import DocumentError, Location
from graftlm.taxonomy.model import Leaf

log = logging.getLogger(__name__)

DOCS_REPO_SUFFIX = "-repo"
"""A missing local document repository `NAME-repo` is built from the sibling folder `NAME/`."""

_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "graftlm examples",
    "GIT_AUTHOR_EMAIL": "examples@graftlm.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "graftlm examples",
    "GIT_COMMITTER_EMAIL": "examples@graftlm.invalid",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(args: list[str], cwd: Path) -> str:
    env = {**os.environ, **_GIT_IDENTITY}
    try:
        done = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false", *args],
                              cwd=cwd, env=env, capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise DocumentError("git is not installed", hint="install git (e.g. `apt-get install git`)") from None
    except subprocess.CalledProcessError as e:
        raise DocumentError(f"git {' '.join(args)} failed in {cwd}: {e.stderr.strip()}") from None
    return done.stdout.strip()


def build_docs_repo(source: Path, repo: Path) -> str:
    """Commit every file under `source` into a new git repository at `repo` and return the commit SHA.

    Author, committer, dates and message are fixed, so the same files always give the same SHA (the
    one a qna.yaml's `document.commit` names). Files keep their permission bits in the working copy (git
    records only the executable bit). An existing repository is left as it is."""
    source, repo = Path(source), Path(repo)
    if (repo / ".git").exists():
        return _git(["rev-parse", "HEAD"], repo)
    if not source.is_dir():
        raise DocumentError(f"cannot build document repository {repo}: source folder {source} not found")
    with atomic_dir(repo) as tmp:
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                dest = tmp / path.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
                shutil.copymode(path, dest)
        _git(["init", "-q", "-b", "main"], tmp)
        _git(["add", "-A"], tmp)
        _git(["commit", "-q", "-m", f"Documents from {source.name}"], tmp)
        sha = _git(["rev-parse", "HEAD"], tmp)
    return sha


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def buildable_repo(leaf: Leaf, taxonomy: Path) -> tuple[Path, Path] | None:
    """(repository, source folder) when the leaf names a missing local `NAME-repo` whose `NAME/` exists.

    Raises DocumentError when that repository lies outside the taxonomy and outside the folder holding it:
    graftlm builds repositories only there."""
    from graftlm.taxonomy.documents import resolve_repo

    if leaf.document is None:
        return None
    try:
        spec, local = resolve_repo(leaf)
    except DocumentError:
        return None  # loading the documents reports a bad repository with its field
    if not local or not spec.endswith(DOCS_REPO_SUFFIX):
        return None
    repo = Path(spec)
    source = repo.with_name(repo.name[: -len(DOCS_REPO_SUFFIX)])
    if repo.exists() or not source.is_dir():
        return None
    root = Path(taxonomy).resolve()
    if not (_inside(repo, root) or repo.parent == root.parent) or not _inside(source.resolve(), repo.parent):
        raise DocumentError(
            f"the local repository {repo} does not exist, and graftlm builds one from {source.name}/ only inside "
            f"the taxonomy {root} or in the folder beside it",
            location=Location(str(leaf.path), None, None, "document.repo"),
            hint=f"make the repository yourself (git init, add, commit in {source}) and point document.repo at it")
    return repo, source


def prepare_local_documents(taxonomy: Path, leaves: list[Leaf] | None = None) -> list[Path]:
    """Build the missing local document repositories that knowledge leaves of `taxonomy` name.

    `leaves` are the taxonomy's validated leaves (loaded through the validator when None). A leaf's
    `document.repo` that is a local path ending in `-repo` and does not exist yet is built from the
    sibling folder without the suffix (see `build_docs_repo`). Returns the repositories built."""
    if leaves is None:
        from graftlm.taxonomy.load import load_taxonomy

        leaves = load_taxonomy(Path(taxonomy))
    built: list[Path] = []
    for leaf in leaves:
        target = buildable_repo(leaf, taxonomy)
        if target is not None and target[0] not in built:
            repo, source = target
            log.info("building document repository %s from %s", repo, source)
            build_docs_repo(source, repo)
            built.append(repo)
    return built
