"""Walking a taxonomy: an unreadable folder is an error, never skipped; a qna.yaml linked from outside the
taxonomy is refused without being read. Both through the real `graft` command in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from graftlm.errors import TaxonomyError
from graftlm.taxonomy.load import load_taxonomy
from graftlm.testing.taxonomy import write

from .conftest import SKILL

SRC = Path(__file__).resolve().parents[2] / "src"


# Root reads every folder whatever its mode, so under root the command drops to an unprivileged user once
# its modules are imported (the interpreter's files and the checkout itself may be private to root).
AS_NOBODY = """import contextlib, io, os, sys
# modules the command imports lazily, loaded while the interpreter's files can still be read
import asyncio, contextvars, decimal, fractions, gettext, importlib.metadata, json, locale, secrets, shutil
import uuid, zoneinfo
import graftlm.cli, graftlm.cli.taxonomy, graftlm.taxonomy.load, graftlm.taxonomy.show
# the same command once with root's rights, its output discarded, loads every module it imports on the way
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        graftlm.cli.main(sys.argv[1:])
    except SystemExit:
        pass
os.setgid(65534)
os.setuid(65534)
sys.exit(graftlm.cli.main(sys.argv[1:]))
"""


def graft(*args: str, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = ["-c", AS_NOBODY] if unprivileged and os.geteuid() == 0 else ["-m", "graftlm"]
    return subprocess.run([sys.executable, *command, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder any user can enter (pytest's own tmp folders are private to their owner)."""
    path = Path(tempfile.mkdtemp(prefix="graft-walk-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for dirpath, dirnames, _ in os.walk(path):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        shutil.rmtree(path)


def test_unreadable_folder_is_an_error_not_skipped(open_tmp: Path) -> None:
    root = open_tmp / "tax"
    write(root / "compositional_skills" / "writing" / "polite" / "qna.yaml", SKILL)
    hidden = root / "compositional_skills" / "secret"
    write(hidden / "leaf" / "qna.yaml", SKILL)
    for d in root.rglob("*"):
        d.chmod(0o755 if d.is_dir() else 0o644)
    hidden.chmod(0)
    proc = graft("taxonomy", "validate", str(root), unprivileged=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{hidden}:1:1: error: cannot read this folder" in proc.stdout
    assert "Traceback" not in proc.stderr
    shown = graft("taxonomy", "show", str(root), unprivileged=True)
    assert shown.returncode == 2 and "cannot read this folder" in shown.stderr and str(hidden) in shown.stderr
    assert "Traceback" not in shown.stderr


def test_qna_linked_from_outside_the_taxonomy_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "tax"
    write(root / "compositional_skills" / "writing" / "polite" / "qna.yaml", SKILL)
    secret = write(tmp_path / "elsewhere" / "private.yaml", "password: hunter2\n")
    link = root / "compositional_skills" / "stolen" / "qna.yaml"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    inside = root / "compositional_skills" / "alias" / "qna.yaml"  # a link within the taxonomy is fine
    inside.parent.mkdir(parents=True)
    inside.symlink_to(root / "compositional_skills" / "writing" / "polite" / "qna.yaml")

    proc = graft("taxonomy", "validate", "--json", str(root))
    assert proc.returncode == 1
    reports = {Path(r["path"]).parent.name: r for r in json.loads(proc.stdout)}
    assert reports["alias"]["valid"] and reports["polite"]["valid"]
    stolen = reports["stolen"]
    assert not stolen["valid"] and "symbolic link" in stolen["errors"][0]["message"]
    assert "hunter2" not in proc.stdout + proc.stderr and "password" not in proc.stdout + proc.stderr
    with pytest.raises(TaxonomyError, match="outside the taxonomy"):
        load_taxonomy(root)
