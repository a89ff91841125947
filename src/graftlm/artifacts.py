"""Self-describing stage directories: atomic writes, JSONL, content hashes and `manifest.json`.

Every stage writes its data first and `manifest.json` last, so a directory with a manifest is
complete, and one without is unfinished work that a rerun resumes or redoes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graftlm.redact import strip_credentials

MANIFEST = "manifest.json"


def stable_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the input of every content hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_obj(obj: Any) -> str:
    """SHA-256 hex digest of `stable_json(obj)`."""
    return hashlib.sha256(stable_json(obj).encode("utf-8")).hexdigest()


def hash_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(dest: Path, *, replace: bool = False) -> Iterator[Path]:
    """A temporary folder beside `dest` that becomes `dest` when the block ends without an error (and is
    removed otherwise), so `dest` is complete or absent. With `replace`, an existing `dest` is removed
    just before the new one takes its place."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        yield tmp
        if replace and dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON (manifests, recipes), with credentials cut out of any URL in it."""
    atomic_write_text(path, strip_credentials(json.dumps(obj, indent=2, ensure_ascii=False, default=str)) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: Path, records: Iterable[Any]) -> int:
    """Atomically write all records, one JSON object a line; returns the count."""
    lines = [json.dumps(r, ensure_ascii=False, default=str) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def append_jsonl(path: Path, record: Any) -> None:
    """Append one record as one line (a crash leaves at most one partial last line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        f.flush()


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read records; a truncated last line (a crash mid-append) is skipped, any other bad line raises."""
    from graftlm.errors import InputError, Location

    path = Path(path)
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) and not line.endswith("\n"):
                return  # half-written last line from an interrupted append
            raise InputError(
                f"not valid JSON: {e.msg}",
                location=Location(str(path), i, e.colno),
                hint="each line must be one JSON object; fix or delete the line",
            ) from e


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest.json` last: its presence marks the stage directory complete."""
    path = Path(directory) / MANIFEST
    write_json(path, manifest)
    return path


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(directory: Path, input_hash: str | None = None) -> bool:
    """True when the stage directory has a manifest (and, if given, for these inputs)."""
    manifest = read_manifest(directory)
    if manifest is None:
        return False
    return input_hash is None or manifest.get("input_hash") == input_hash
