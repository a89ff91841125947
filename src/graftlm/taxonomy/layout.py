"""Where a taxonomy keeps its leaves: the branch folders, the `qna.yaml` file name, finding leaf files
and naming a leaf from its path. Shared by validation, loading and the git diff, and importing none of them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from graftlm.errors import TaxonomyError

QNA = "qna.yaml"
"""The file name of every leaf."""
SCHEMA_FOLDERS = ("compositional_skills", "knowledge")
"""The folders InstructLab's schemas are named after (foundational skills use the skills schema)."""
BRANCHES = ("knowledge", "compositional_skills", "foundational_skills")
"""The top-level folders that hold leaves."""


def find_qna_files(root: Path) -> Iterator[Path | tuple[Path, str]]:
    """Every path named `qna.yaml` below `root` (files, directories and broken links alike), in walk order;
    symlinked folders are not followed and `.git` is skipped. A folder that cannot be read, and a
    `qna.yaml` that is a link leading out of `root`, come back as `(path, reason)`: never skipped silently."""
    top = Path(root).resolve()
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append):
        yield from _unreadable(errors)
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        names = set(filenames) | set(dirnames)
        if QNA in names:
            path = Path(dirpath) / QNA
            yield _outside(path, top) or path
        if QNA in dirnames:
            dirnames.remove(QNA)
    yield from _unreadable(errors)


def _unreadable(errors: list[OSError]) -> Iterator[tuple[Path, str]]:
    for e in errors:
        yield (Path(e.filename), f"cannot read this folder ({e.strerror or e}), so the leaves in it were not "
                                 "checked; fix its permissions (e.g. chmod u+rx) or move it out of the taxonomy")
    errors.clear()


def _outside(path: Path, top: Path) -> tuple[Path, str] | None:
    """`(path, reason)` when `path` is a symbolic link whose target is outside the folder `top`."""
    if not path.is_symlink():
        return None
    target = path.resolve()
    if target.is_relative_to(top):
        return None
    return (path, f"this {QNA} is a symbolic link to {target}, outside the taxonomy {top}; links may not leave "
                  "the taxonomy: copy the file into the leaf folder instead")


def leaf_files(root: Path) -> list[Path]:
    """Every `qna.yaml` under the branches of a taxonomy root, sorted. Raises TaxonomyError for a folder
    that cannot be read and for a `qna.yaml` linked from outside the taxonomy."""
    root = Path(root)
    files: list[Path] = []
    problems: list[str] = []
    for branch in BRANCHES:
        if (root / branch).is_dir():
            for item in find_qna_files(root / branch):
                if isinstance(item, tuple):
                    problems.append(f"{item[0]}: {item[1]}")
                else:
                    files.append(item)
    if problems:
        raise TaxonomyError(f"{len(problems)} problem(s) while reading the taxonomy {root}:\n  " + "\n  ".join(problems),
                            hint=f"fix them, then check with: graft taxonomy validate {root}")
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
