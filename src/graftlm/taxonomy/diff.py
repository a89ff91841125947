"""Which leaves changed against a git base, selected the way InstructLab selects them.

A leaf counts when its `qna.yaml` differs between the merge base of HEAD and `base` and the working
tree (committed, staged and unstaged edits alike) or is untracked; deleted leaves do not count.
`base="empty"` means every leaf.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from graftlm.errors import TaxonomyError
from graftlm.taxonomy.layout import is_leaf_path, leaf_files

EMPTY = "empty"
DEFAULT_BASE = "origin/main"


def _git(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
    except FileNotFoundError:
        raise TaxonomyError("git is not installed", hint="install git, or pass --base empty") from None
    except subprocess.TimeoutExpired:
        raise TaxonomyError(f"git {' '.join(args)} took too long in {cwd}") from None
    if proc.returncode != 0:
        raise _GitFailed(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


class _GitFailed(Exception):
    pass


def changed_leaves(root: Path, base: str = DEFAULT_BASE) -> list[Path]:
    """`qna.yaml` paths (under `root`) of the leaves changed against `base`, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise TaxonomyError(f"taxonomy folder not found: {root}")
    if base == EMPTY:
        return leaf_files(root)
    if not base or base.startswith("-") or any(c in base for c in "\0\n"):
        raise TaxonomyError(f"invalid git ref {base!r}", hint="pass a branch, tag or commit, or `empty`")
    try:
        _git(["rev-parse", "--is-inside-work-tree"], root)
    except _GitFailed:
        raise TaxonomyError(f"{root} is not inside a git repository, so there is nothing to diff against",
                            hint="pass --base empty to select every leaf") from None
    try:
        _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{base}^{{commit}}"], root)
    except _GitFailed:
        raise TaxonomyError(f"cannot find the git ref {base!r} in {root}",
                            hint="fetch it (e.g. `git fetch origin`), pass another --base, or --base empty") from None
    try:
        head_ok = True
        _git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], root)
    except _GitFailed:
        head_ok = False  # a repository without commits: everything is untracked
    changed: set[str] = set()
    if head_ok:
        try:
            merge_base = _git(["merge-base", "HEAD", base], root).strip()
        except _GitFailed:
            raise TaxonomyError(f"HEAD and {base!r} share no history in {root}",
                                hint="pass a base on the same history, or --base empty") from None
        out = _git(["diff", "--name-only", "--no-renames", "--diff-filter=d", "--relative", "-z",
                    merge_base, "--"], root)
        changed.update(p for p in out.split("\0") if p)
    out = _git(["ls-files", "--others", "--exclude-standard", "-z", "--", "."], root)
    changed.update(p for p in out.split("\0") if p)
    return sorted(root / p for p in changed if is_leaf_path(p) and os.path.lexists(root / p))
