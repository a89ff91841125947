"""Validate taxonomy `qna.yaml` files by InstructLab's rules, with positions and plain-language messages.

The rules are the JSON schemas of the `instructlab-schema` package (v1..v3; the version comes from the
file's `version`, default 1; knowledge below v3 is rejected), plus YAML syntax, empty files and
non-mapping documents. Lint findings that are harmless to the data (trailing spaces, a missing final
newline) are warnings; with `strict=True` the file is linted by yamllint with InstructLab's own
configuration instead, and what yamllint calls an error is an error, for InstructLab's exact verdict. Every finding carries the line and column of the YAML node, the field path
(`seed_examples[3].answer`) and a message that says what to change.

Hostile files never raise: a binary file, a huge file (refused by size before reading), deep nesting,
alias bombs, bytes that are not UTF-8, a directory or a broken symlink named `qna.yaml` each give one
clear error, and the other files are still validated.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftlm.taxonomy.layout import QNA, SCHEMA_FOLDERS, find_qna_files
from graftlm.taxonomy.placeholder import find_placeholders
from graftlm.taxonomy.schema import Violation, checker, load_schema_json
from graftlm.taxonomy.yamlload import Loaded, YamlReadError, load_yaml
from graftlm.yamlpos import Path_, field_name

MAX_FILE_BYTES = 4 * 1024 * 1024
"""Larger files are refused without being read (the largest community qna.yaml is about 0.6 MB)."""
LATEST_VERSION = 3
INSTRUCTLAB_YAMLLINT = "{extends: relaxed, rules: {line-length: disable}}"
"""The yamllint configuration InstructLab validates with (`instructlab.schema.taxonomy`)."""


@dataclass(frozen=True)
class Issue:
    """One error or warning: where it is and what to do about it."""

    line: int
    column: int
    field: str
    """Field path such as `seed_examples[3].answer`; empty for the whole file."""
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "field": self.field, "message": self.message}


@dataclass
class FileReport:
    """The verdict on one file. `data` and `loaded` are set when the YAML could be read."""

    path: Path
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    version: int | None = None
    schema: str | None = None
    """`knowledge` or `compositional_skills`: which InstructLab schema the file was checked against."""
    data: Any = field(default=None, repr=False)
    loaded: Loaded | None = field(default=None, repr=False)

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "valid": self.valid,
            "errors": [e.to_dict() for e in self.errors],
            "warnings": [w.to_dict() for w in self.warnings],
        }

    def error(self, message: str, line: int = 1, column: int = 1, field: str = "") -> FileReport:
        self.errors.append(Issue(line, column, field, message))
        return self


# --- finding files -------------------------------------------------------------------------------


def expand_paths(paths: Iterable[Path | str]) -> list[Path | tuple[Path, str]]:
    """Files to validate for each argument: a file as is, every `qna.yaml` below a folder.
    A folder without any, an unreadable folder and a link leaving the folder come back as `(path, reason)`."""
    out: list[Path | tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_dir() and p.name != QNA:
            found = sorted(find_qna_files(p), key=lambda item: item[0] if isinstance(item, tuple) else item)
            out.extend(found or [(p, f"no {QNA} under this folder; pass a taxonomy root, a leaf folder "
                                  f"or a {QNA} file")])
        else:
            out.append(p)
    return out


def validate_paths(paths: Iterable[Path | str], *, strict: bool = False) -> list[FileReport]:
    """Validate taxonomy roots, leaf folders or `qna.yaml` files; one report per file, never raises for
    bad input. `strict`: InstructLab's verdict, yamllint errors included (see `validate_file`)."""
    reports = []
    for item in expand_paths(paths):
        if isinstance(item, tuple):
            reports.append(FileReport(item[0]).error(item[1]))
        else:
            reports.append(validate_file(item, strict=strict))
    return reports


# --- one file ------------------------------------------------------------------------------------


def _read_bytes(path: Path, report: FileReport) -> bytes | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            report.error(f"broken symlink: it points to {os.readlink(path)!r}, which does not exist; "
                         "fix or remove the link")
        else:
            report.error("the file does not exist")
        return None
    except OSError as e:
        report.error(f"cannot read the file: {e.strerror or e}")
        return None
    if stat.S_ISDIR(st.st_mode):
        report.error(f"this is a directory, not a file; a leaf is a folder holding a file named {QNA}")
        return None
    if not stat.S_ISREG(st.st_mode):
        report.error("this is not a regular file (a pipe, socket or device); a leaf needs a plain text file")
        return None
    if st.st_size > MAX_FILE_BYTES:
        report.error(f"the file is {st.st_size / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES // (1024 * 1024)} MiB "
                     "(seed examples are short: keep long documents in the knowledge document repository)")
        return None
    if path.name != QNA:
        report.error(f"a taxonomy file must be named {QNA}, not {path.name!r}; rename it")
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        report.error(f"cannot read the file: {e.strerror or e}")
        return None
    if len(raw) > MAX_FILE_BYTES:
        report.error(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return None
    return raw


def _line_col(raw: bytes, offset: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, offset) + 1
    start = raw.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


def _decode(raw: bytes, report: FileReport) -> str | None:
    nul = raw.find(b"\x00")
    if nul >= 0:
        report.error("this is a binary file (it holds NUL bytes), not YAML text; a qna.yaml must be UTF-8 text",
                     *_line_col(raw, nul))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _line_col(raw, e.start)
        report.error(f"the file is not valid UTF-8 (byte 0x{raw[e.start]:02x}); save it as UTF-8", line, col)
        return None
    return text[1:] if text.startswith("\ufeff") else text


def _trailing_space_ends(text: str) -> list[int]:
    """Offsets of the line ends (or the text end) that have spaces or tabs before them."""
    ends = set()
    for needle in (" \n", "\t\n", " \r\n", "\t\r\n"):
        i = text.find(needle)
        while i >= 0:
            ends.add(i + 1)
            i = text.find(needle, i + 1)
    if text.endswith((" ", "\t")):
        ends.add(len(text))
    return sorted(ends)


def _lint(text: str, report: FileReport) -> None:
    """The yamllint findings InstructLab reports that do not change the data: warnings here."""
    line, pos = 1, 0
    for end in _trailing_space_ends(text):
        start = end
        while start > 0 and text[start - 1] in " \t":
            start -= 1
        line += text.count("\n", pos, start)
        pos = start
        col = start - (text.rfind("\n", 0, start) + 1) + 1
        report.warnings.append(Issue(line, col, "", "trailing spaces; remove them"))
    if text and not text.endswith("\n"):
        last = text.count("\n") + 1
        report.warnings.append(Issue(last, len(text.rsplit("\n", 1)[-1]) + 1, "",
                                     "no newline at the end of the file; add one"))


def _yamllint(text: str, report: FileReport) -> None:
    """yamllint's findings with InstructLab's configuration, at yamllint's level. Syntax errors are left
    to the YAML reader, which explains them better."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    for p in linter.run(text, YamlLintConfig(content=INSTRUCTLAB_YAMLLINT)):
        if p.rule is None:
            continue
        issue = Issue(p.line, p.column, "", f"{p.desc} (yamllint rule {p.rule}"
                      + ("; InstructLab rejects the file for it)" if p.level == "error" else ")"))
        (report.errors if p.level == "error" else report.warnings).append(issue)


def validate_file(path: Path | str, *, strict: bool = False) -> FileReport:
    """Validate one `qna.yaml`. Never raises for bad input: problems become `report.errors`.
    `strict`: lint with yamllint as InstructLab does (files of version 2 and later), its errors (e.g.
    trailing spaces) as errors and its warnings as warnings, so the verdict is InstructLab's exactly."""
    path = Path(path)
    report = FileReport(path)
    try:
        raw = _read_bytes(path, report)
        if raw is None:
            return report
        text = _decode(raw, report)
        if text is None:
            return report
        if not strict:
            _lint(text, report)
        try:
            loaded = load_yaml(text)
        except YamlReadError as e:
            return report.error(e.message, e.line, e.column, e.field)
        report.loaded = loaded
        for p in loaded.problems:
            report.error(p.message, p.line, p.column, field_name(p.path))
        data = loaded.data
        if data is None or data == {} or data == []:
            return report.error("the file is empty; a qna.yaml needs at least version, created_by and "
                                "seed_examples (see docs/taxonomy.md)")
        if not isinstance(data, dict):
            line, col = loaded.position(())
            return report.error("the file is not valid: the top level must be a mapping of `key: value` "
                                f"pairs, not {_describe(data)}", line, col)
        report.data = data
        if strict and file_version(data) > 1:  # as InstructLab: version 1 files are not linted
            _yamllint(text, report)
        _check_schema(path, data, loaded, report)
        _check_placeholders(data, loaded, report)
        if report.valid and report.schema == "compositional_skills":
            _check_grounded(path, data, loaded, report)
    except Exception as e:  # a bug here must not stop the other files from being validated
        report.error(f"internal error while validating ({type(e).__name__}: {e}); please report it")
    return report


# --- the JSON schemas ----------------------------------------------------------------------------


def schema_name_for(path: Path, data: dict[str, Any]) -> str:
    """The schema InstructLab applies: from the nearest `knowledge`/`compositional_skills` folder in the
    path, else (`foundational_skills`, other folders) `knowledge` when the file has a `document`."""
    for part in reversed(Path(path).absolute().parts[:-1]):
        if part in SCHEMA_FOLDERS:
            return part
        if part == "foundational_skills":
            break
    return "knowledge" if "document" in data else "compositional_skills"


def file_version(data: dict[str, Any]) -> int:
    """The schema version a file asks for, as InstructLab reads it (default 1)."""
    v = data.get("version", 1)
    if isinstance(v, bool):
        return 1
    if isinstance(v, int):
        return v
    try:
        return int(v)
    except (TypeError, ValueError):
        return 1


def supported_versions() -> list[int]:
    from instructlab.schema import schema_versions

    return [int(v.name[1:]) for v in schema_versions()]


def _check_schema(path: Path, data: dict[str, Any], loaded: Loaded, report: FileReport) -> None:
    name = schema_name_for(path, data)
    version = file_version(data)
    report.schema, report.version = name, version
    vline, vcol = loaded.position(("version",)) if "version" in data else (1, 1)
    schema = load_schema_json(version, name) if version >= 1 else None
    if schema is None:
        report.error(f"version {data.get('version')!r} is not supported; supported versions are "
                     f"{', '.join(map(str, supported_versions()))}: use `version: {LATEST_VERSION}`",
                     vline, vcol, "version")
        return
    if schema.get("deprecated"):
        what = "knowledge" if name == "knowledge" else name
        report.error(f"version {version} is not supported for {what} leaves; the minimum is {LATEST_VERSION}. "
                     f"Set `version: {LATEST_VERSION}` and use the v3 layout: domain, document_outline, "
                     "document {repo, commit, patterns} and at least 5 seed_examples, each a context with "
                     "at least 3 questions_and_answers", vline, vcol, "version")
        return
    violations = checker(version, name)(data)
    if not violations:
        return
    seen: set[tuple[int, int, str, str]] = set()
    for err in violations:
        for issue in _translate(err, loaded, schema):
            k = (issue.line, issue.column, issue.field, issue.message)
            if k not in seen:
                seen.add(k)
                report.errors.append(issue)
    report.errors.sort(key=lambda i: (i.line, i.column))


def _check_placeholders(data: dict[str, Any], loaded: Loaded, report: FileReport) -> None:
    """graftlm's own errors: values still holding a `FILL IN:` placeholder of `graft taxonomy draft`."""
    for path, instruction in find_placeholders(data):
        line, col = loaded.position(path)
        report.errors.append(Issue(line, col, field_name(path),
                                   f"placeholder left by `graft taxonomy draft`: {instruction}"))
    report.errors.sort(key=lambda i: (i.line, i.column))


def _check_grounded(path: Path, data: dict[str, Any], loaded: Loaded, report: FileReport) -> None:
    """graftlm's own warnings: a grounded skill needs a context on every seed."""
    seeds = [s for s in data.get("seed_examples", []) if isinstance(s, dict)]
    with_context = [bool(s.get("context")) for s in seeds]
    parts = Path(path).absolute().parts
    under_grounded = any(a == "compositional_skills" and b == "grounded" for a, b in zip(parts, parts[1:], strict=False))
    if under_grounded and not any(with_context):
        line, col = loaded.position(("seed_examples",))
        report.warnings.append(Issue(line, col, "seed_examples",
                                     "this leaf is under compositional_skills/grounded/ but no seed has a "
                                     "context, so it is treated as a freeform skill; add a `context:` to each "
                                     "seed to make it grounded"))
    elif any(with_context) and not all(with_context):
        for i, has in enumerate(with_context):
            if not has:
                line, col = loaded.position(("seed_examples", i))
                report.warnings.append(Issue(line, col, f"seed_examples[{i}]",
                                             f"seed_examples[{i}] has no context while other seeds have one; a "
                                             "grounded skill needs a context on every seed (graft generate "
                                             "refuses this leaf)"))


def _describe(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"a date ({value})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bytes):
        return "binary data"
    return f"a {type(value).__name__}"


_TYPE_WORDS = {"string": "text", "array": "a list", "object": "a mapping of `key: value` pairs",
               "integer": "a whole number", "number": "a number", "boolean": "true or false"}


def _type_fix(value: Any) -> str:
    if value is None:
        return "write a value after the colon (use `|` for text over several lines)"
    if isinstance(value, (bool, int, float, datetime.date)):
        return "put the value in quotes to make it text"
    if isinstance(value, dict):
        return "a `: ` inside an unquoted value makes a mapping: quote the text or use `|`"
    if isinstance(value, list):
        return "a leading `- ` makes a list: quote the text or use `|`"
    return "change the value"


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _allowed(schema: dict[str, Any]) -> set[str]:
    names = set(schema.get("properties", {}))
    if "$ref" in schema:
        names.add("version")  # the only property of the version.json every schema refers to
    return names


_UNKNOWN_HINTS = {
    "attribution": "attribution belongs in attribution.txt beside the qna.yaml",
    "task_description": "knowledge v3 has no task_description: describe the documents in document_outline",
    "document": "only knowledge leaves (under knowledge/) have a document",
}


def _translate(err: Violation, loaded: Loaded, root_schema: dict[str, Any]) -> list[Issue]:
    """Turn one jsonschema error into issues a contributor understands."""
    path: Path_ = tuple(err.absolute_path)
    fname = field_name(path) or "the file"
    kind = err.validator
    value = err.instance
    line, col = loaded.position(path)
    if kind == "required":
        missing = [k for k in err.validator_value if not (isinstance(value, dict) and k in value)]
        where = f"{fname} has" if path else "the file has"
        return [Issue(line, col, field_name((*path, k)), f"{where} no `{k}`; it is required: add `{k}:`")
                for k in missing]
    if kind in ("unevaluatedProperties", "additionalProperties"):
        allowed = _allowed(err.schema)
        out = []
        for k in value if isinstance(value, dict) else []:
            if k in allowed:
                continue
            kline, kcol = loaded.position((*path, k), key=True)
            msg = f"unknown field `{k}`; allowed here: {', '.join(sorted(allowed))}"
            if k in _UNKNOWN_HINTS:
                msg += f" ({_UNKNOWN_HINTS[k]})"
            out.append(Issue(kline, kcol, field_name((*path, k)), msg))
        return out or [Issue(line, col, field_name(path), err.message[-200:])]
    if kind == "minItems":
        n = len(value) if isinstance(value, list) else 0
        return [Issue(line, col, field_name(path),
                      f"{fname} has {_items(n)}; at least {err.validator_value} are required")]
    if kind == "type":
        expected = err.validator_value
        words = _TYPE_WORDS.get(expected, expected) if isinstance(expected, str) else " or ".join(expected)
        return [Issue(line, col, field_name(path),
                      f"{fname} must be {words}, but it is {_describe(value)}; {_type_fix(value)}")]
    if kind == "minLength":
        return [Issue(line, col, field_name(path), f"{fname} is empty; write some text")]
    if kind == "uniqueItems" and isinstance(value, list):
        first: dict[str, int] = {}
        for i, item in enumerate(value):
            key = json.dumps(item, sort_keys=True, default=str)
            if key in first:
                iline, icol = loaded.position((*path, i))
                return [Issue(iline, icol, field_name((*path, i)),
                              f"{field_name((*path, i))} repeats {field_name((*path, first[key]))}; "
                              "remove or change one of them")]
            first[key] = i
    if kind == "const":
        return [Issue(line, col, field_name(path),
                      f"{fname} must be {err.validator_value!r}, not {value!r}")]
    return [Issue(line, col, field_name(path), f"{fname}: {err.message[-200:]}")]
