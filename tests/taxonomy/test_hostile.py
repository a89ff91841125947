"""Hostile input: each bad file gets one clear error, never a traceback, and the other files are
still validated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from graftlm.taxonomy.validate import MAX_FILE_BYTES, validate_file, validate_paths
from graftlm.taxonomy.yamlload import MAX_DEPTH, YamlReadError, load_yaml
from graftlm.testing.taxonomy import write

from .conftest import SKILL

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def one_error(path: Path) -> str:
    r = validate_file(path)
    assert not r.valid and len(r.errors) == 1, r.errors
    return r.errors[0].message


def test_binary_file(tmp_path: Path) -> None:
    p = write(tmp_path / "qna.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert "binary file" in one_error(p)


def test_huge_file_is_refused_by_size(tmp_path: Path) -> None:
    p = tmp_path / "qna.yaml"
    with open(p, "wb") as f:  # a sparse 50 MB file: refused from its size, never read
        f.truncate(50 * 1024 * 1024)
    msg = one_error(p)
    assert "52.4 MB" in msg and f"{MAX_FILE_BYTES // 2**20} MiB" in msg


def test_deeply_nested_flow_and_block(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow" / "qna.yaml", "a: " + "[" * 200_000 + "]" * 200_000 + "\n")
    assert "nest" in one_error(flow)  # libyaml stops at its own depth limit; our reader at MAX_DEPTH
    block = "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + "  " * (MAX_DEPTH + 5) + "x\n"
    assert "nested more than" in one_error(write(tmp_path / "block" / "qna.yaml", block))


def test_billion_laughs_is_stopped_while_reading(tmp_path: Path) -> None:
    msg = one_error(write(tmp_path / "qna.yaml", BOMB))
    assert "YAML bomb" in msg
    # a few aliases are fine
    small = load_yaml("a: &x [1, 2]\nb: *x\n")
    assert small.data == {"a": [1, 2], "b": [1, 2]}


def test_recursive_and_undefined_alias() -> None:
    with pytest.raises(YamlReadError, match="not defined before"):
        load_yaml("a: &x [1, *x]\n")
    with pytest.raises(YamlReadError, match="not defined before"):
        load_yaml("a: *nope\n")


def test_non_utf8_bytes_give_the_position(tmp_path: Path) -> None:
    r = validate_file(write(tmp_path / "qna.yaml", b"version: 3\ncreated_by: caf\xe9 owner\n"))
    (e,) = r.errors
    assert "not valid UTF-8" in e.message and "0xe9" in e.message
    assert (e.line, e.column) == (2, 16)


def test_directory_fifo_and_broken_symlink(tmp_path: Path) -> None:
    d = tmp_path / "dir" / "qna.yaml"
    d.mkdir(parents=True)
    assert "directory" in one_error(d)
    link = tmp_path / "link" / "qna.yaml"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "nowhere.yaml")
    assert "broken symlink" in one_error(link)
    fifo = tmp_path / "fifo" / "qna.yaml"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    assert "not a regular file" in one_error(fifo)


def test_tags_complex_keys_and_multiple_documents(tmp_path: Path) -> None:
    assert "unsupported YAML tag" in one_error(write(tmp_path / "t" / "qna.yaml", "a: !!python/object:os.system x\n"))
    assert "mapping key must be plain" in one_error(write(tmp_path / "k" / "qna.yaml", "? [a, b]\n: c\n"))
    assert "more than one YAML document" in one_error(write(tmp_path / "m" / "qna.yaml", "a: 1\n---\nb: 2\n"))
    assert "cannot read the value" in one_error(write(tmp_path / "d" / "qna.yaml", "a: 2024-13-45\n"))


def hostile_tree(root: Path) -> Path:
    skills = root / "compositional_skills"
    write(skills / "good" / "qna.yaml", SKILL)
    write(skills / "binary" / "qna.yaml", b"\x00\x01\x02" * 100)
    with open(write(skills / "huge" / "qna.yaml", b""), "wb") as f:
        f.truncate(50 * 1024 * 1024)
    write(skills / "nested" / "qna.yaml", "[" * 50_000)
    write(skills / "bomb" / "qna.yaml", BOMB)
    write(skills / "latin1" / "qna.yaml", b"created_by: \xff\n")
    (skills / "dir" / "qna.yaml").mkdir(parents=True)
    (skills / "link").mkdir()
    (skills / "link" / "qna.yaml").symlink_to(root / "missing")
    return root


def test_a_tree_of_hostile_files_is_fully_validated(tmp_path: Path) -> None:
    reports = validate_paths([hostile_tree(tmp_path / "tax")])
    verdicts = {r.path.parent.name: r.valid for r in reports}
    assert verdicts == {"good": True, "binary": False, "huge": False, "nested": False, "bomb": False,
                        "latin1": False, "dir": False, "link": False}
    assert all(len(r.errors) == 1 for r in reports if not r.valid)


def test_cli_prints_errors_not_tracebacks(tmp_path: Path) -> None:
    root = hostile_tree(tmp_path / "tax")
    proc = subprocess.run([sys.executable, "-m", "graftlm", "taxonomy", "validate", str(root)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.count(": error: ") == 7
    assert "8 file(s): 1 valid, 7 invalid" in proc.stderr


def test_pure_python_parser_gives_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libyaml the reader uses PyYAML's pure-Python parser: same data, same limits."""
    import yaml

    from graftlm.taxonomy import yamlload

    fast = load_yaml(SKILL)
    monkeypatch.setattr(yamlload, "_Parser", yaml.SafeLoader)
    slow = load_yaml(SKILL)
    assert slow.data == fast.data == yaml.safe_load(SKILL)
    assert slow.positions == fast.positions
    with pytest.raises(YamlReadError, match=f"nested more than {MAX_DEPTH}"):
        load_yaml("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(YamlReadError, match="YAML bomb"):
        load_yaml(BOMB)
