"""Where a taxonomy keeps its leaves: the branch folders, the `qna.yaml` file name, finding leaf files
and naming a leaf from its path. Shared by validation, loading and the git diff, and importing none of them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

QNA = "qna.yaml"
"""The file name of every leaf."""
SCHEMA_FOLDERS = ("compositional_skills", "knowledge")
"""The folders InstructLab's schemas are named after (foundational skills use the skills schema)."""
BRANCHES = ("knowledge", "compositional_skills", "foundational_skills")
"""The top-level folders that hold leaves."""


def find_qna_files(root: Path) -> Iterator[Path]:
    """Every path named `qna.yaml` below `root` (files, directories and broken links alike), sorted;
    symlinked folders are not followed and `.git` is skipped."""
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        names = set(filenames) | set(dirnames)
        if QNA in names:
            yield Path(dirpath) / QNA
        if QNA in dirnames:
            dirnames.remove(QNA)


def leaf_files(root: Path) -> list[Path]:
    """Every `qna.yaml` under the branches of a taxonomy root, sorted."""
    root = Path(root)
    files: list[Path] = []
    for branch in BRANCHES:
        if (root / branch).is_dir():
            files.extend(find_qna_files(root / branch))
    return sorted(files)


def is_leaf_path(rel: str) -> bool:
    """Whether a path relative to a taxonomy root is a leaf file (`<branch>/.../qna.yaml`)."""
    parts = Path(rel).parts
    return len(parts) >= 2 and parts[0] in BRANCHES and parts[-1] == QNA


def relative_parts(path: Path, root: Path) -> tuple[str, ...]:
    """The parts of `path` below `root`; for a path outside `root`, from its nearest branch folder."""
    path, root = Path(path).absolute(), Path(root).absolute()
    try:
        return path.relative_to(root).parts
    except ValueError:
        parts = path.parts
        for i in range(len(parts) - 1, -1, -1):
            if parts[i] in BRANCHES:
                return parts[i:]
        return parts[-2:]


def leaf_name(path: Path, root: Path) -> str:
    """`root/compositional_skills/writing/poem/qna.yaml` -> `compositional_skills->writing->poem`."""
    parts = relative_parts(path, root)
    return "->".join(parts[:-1]) if parts and parts[-1] == QNA else "->".join(parts)
