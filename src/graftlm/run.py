"""The whole pipeline as resumable stages: validate, generate, mix, train, eval, report.

This is the only module that knows the order of the stages. Each stage writes its own folder in the
run directory with `manifest.json` last; `run.json` beside them records, for each finished stage, the
hash of its inputs (its recipe section plus the hashes of the stages it reads). A rerun skips every
stage whose recorded hash matches and whose manifest exists, so it resumes at the first unfinished
stage, and a changed recipe section reruns that stage and everything downstream of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from graftlm.errors import DocumentError

# --- local document repositories ---------------------------------------------------------------

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
    one a qna.yaml's `document.commit` names). An existing repository is left as it is."""
    source, repo = Path(source), Path(repo)
    if (repo / ".git").exists():
        return _git(["rev-parse", "HEAD"], repo)
    if not source.is_dir():
        raise DocumentError(f"cannot build document repository {repo}: source folder {source} not found")
    repo.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=repo.parent, prefix=f".{repo.name}."))
    try:
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                dest = tmp / path.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(path.read_bytes())  # plain 0644 files: the tree hash does not depend on modes
                dest.chmod(0o644)
        _git(["init", "-q", "-b", "main"], tmp)
        _git(["add", "-A"], tmp)
        _git(["commit", "-q", "-m", f"Documents from {source.name}"], tmp)
        sha = _git(["rev-parse", "HEAD"], tmp)
        os.replace(tmp, repo)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sha


def prepare_local_documents(taxonomy: Path) -> list[Path]:
    """Build the missing local document repositories that knowledge leaves of `taxonomy` name.

    A leaf's `document.repo` that is a local path ending in `-repo` and does not exist yet is built
    from the sibling folder without the suffix (see `build_docs_repo`). Returns the repositories built."""
    import yaml

    built: list[Path] = []
    root = Path(taxonomy)
    for qna in sorted((root / "knowledge").rglob("qna.yaml")) if (root / "knowledge").is_dir() else []:
        try:
            data = yaml.safe_load(qna.read_text(encoding="utf-8"))
            repo_spec = str(data["document"]["repo"])
        except Exception:
            continue  # validation reports broken files with their line numbers
        if "://" in repo_spec or repo_spec.startswith("git@") or not repo_spec.endswith(DOCS_REPO_SUFFIX):
            continue
        repo = Path(repo_spec).expanduser()
        if not repo.is_absolute():
            repo = (qna.parent / repo).resolve()
        source = repo.with_name(repo.name[: -len(DOCS_REPO_SUFFIX)])
        if not repo.exists() and source.is_dir():
            build_docs_repo(source, repo)
            built.append(repo)
    return built
