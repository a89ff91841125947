"""The one builder of test taxonomies: leaf files from text or data, and real git repositories for documents.

Tests keep their own seed examples; how a leaf, a taxonomy and a documents repository are written lives here.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}
"""Identity and isolation for git in tests: commits work without a user's git config and ignore it."""

Leaf = Mapping[str, Any] | str
"""A leaf's `qna.yaml`: a mapping (dumped as YAML) or the exact text of the file."""


def write(path: Path, text: str | bytes) -> Path:
    """Write `text` to `path`, creating folders; text starting with a newline is dedented first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text) if text.startswith("\n") else text, encoding="utf-8")
    return path


def write_leaf(taxonomy: Path, leaf: str, content: Leaf) -> Path:
    """Write `taxonomy/<leaf>/qna.yaml` (leaf as `a/b/c`) and return the file."""
    text = content if isinstance(content, str) else yaml.safe_dump(dict(content), sort_keys=False, width=1000)
    return write(taxonomy / leaf / "qna.yaml", text)


def build_taxonomy(root: Path, leaves: Mapping[str, Leaf]) -> Path:
    """A taxonomy folder at `root` holding one `qna.yaml` per entry of `leaves` (`a/b/c` -> content)."""
    root.mkdir(parents=True, exist_ok=True)
    for leaf, content in leaves.items():
        write_leaf(root, leaf, content)
    return root


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with the test identity; return its stripped stdout."""
    env = {**os.environ, **GIT_ENV}
    out = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def init_repo(path: Path) -> Path:
    """An empty git repository on branch `main`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def commit_all(repo: Path, message: str = "commit") -> str:
    """Commit everything in the work tree; return the new commit's hash."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def docs_repo(path: Path, files: Mapping[str, str]) -> tuple[Path, str]:
    """A git repository at `path` with `files` (name -> text) committed; returns it and the commit hash."""
    init_repo(path)
    for name, text in files.items():
        write(path / name, text)
    return path, commit_all(path, "documents")
