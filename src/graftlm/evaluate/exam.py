"""Bring your own exam: a JSONL file of questions a team wrote without seeing the generated data.

Each line is `{"question": ..., "answer": ...}` with optional `"keywords"` (the key facts, a list of strings),
`"context"` (the passage for the open-book bound) and `"leaf"` (a name to group questions by; default
`exam`). The questions are scored like held-out knowledge items: fact recall (on `keywords` when given),
token F1, ROUGE-L and the judge, closed-book for the trained and base model, open-book for the base model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graftlm.artifacts import hash_obj
from graftlm.errors import InputError, Location
from graftlm.records import EvalItem

EXAM_LEAF = "exam"
"""The leaf name of exam questions that name none."""
FIELDS = {"question", "answer", "keywords", "context", "leaf"}
HINT = ('each line is a JSON object like {"question": "...", "answer": "..."} with optional "keywords" '
        '(list of strings), "context" (string) and "leaf" (string)')


def load_exam(path: Path) -> list[EvalItem]:
    """The questions of an exam file. Raises InputError naming the file, line and field of a bad line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"exam file not found: {path}", hint="pass --questions a JSONL file of questions")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the exam file: {e}", location=Location(str(path)),
                         hint="save it as UTF-8 text") from None
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = parse_line(line, Location(str(path), number))
        if item.id in seen:
            raise InputError(f"the same question is on line {seen[item.id]}", location=Location(str(path), number,
                             field="question"), hint="remove one of the two lines")
        seen[item.id] = number
        items.append(item)
    if not items:
        raise InputError("the exam file holds no questions", location=Location(str(path)), hint=HINT)
    return items


def parse_line(line: str, where: Location) -> EvalItem:
    """One exam question from one line of JSON (pure; `where` names the file and line in errors)."""
    def bad(message: str, field: str | None = None) -> InputError:
        return InputError(message, location=Location(where.file, where.line, field=field), hint=HINT)

    try:
        row: Any = json.loads(line)
    except json.JSONDecodeError as e:
        raise bad(f"not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise bad(f"expected a JSON object, got {type(row).__name__}")
    unknown = sorted(set(row) - FIELDS)
    if unknown:
        raise bad(f"unknown field {unknown[0]!r}", unknown[0])
    for field in ("question", "answer"):
        if field not in row:
            raise bad(f"missing field {field!r}", field)
    for field in ("question", "answer", "context", "leaf"):
        value = row.get(field)
        if value is not None and (not isinstance(value, str) or (field != "context" and not value.strip())):
            raise bad(f"{field!r} must be a non-empty string, got {json.dumps(value)}", field)
    keywords = row.get("keywords")
    if keywords is not None and (not isinstance(keywords, list) or not keywords
                                 or not all(isinstance(k, str) and k.strip() for k in keywords)):
        raise bad(f"'keywords' must be a non-empty list of non-empty strings, got {json.dumps(keywords)}", "keywords")
    leaf = (row.get("leaf") or EXAM_LEAF).strip()
    return EvalItem(id=hash_obj(["exam", leaf, row["question"]])[:20], leaf=leaf, leaf_type="knowledge",
                    question=row["question"], answer=row["answer"], context=row.get("context") or None,
                    source="exam", metadata={"line": where.line, **({"keywords": keywords} if keywords else {})})


def check_exam_config(questions: str | None, documents: str | None) -> None:
    """Fail before any work when `eval.questions` or `eval.documents` name something unusable (a run
    would otherwise find out after training)."""
    from graftlm.errors import ConfigError

    if questions:
        try:
            load_exam(Path(questions))
        except InputError as e:
            raise ConfigError(f"eval.questions: {e.message}", hint=e.hint, location=e.location) from None
    if documents and not Path(documents).exists():
        raise ConfigError(f"eval.documents: not found: {documents}",
                          hint="a Markdown, PDF or text file or a folder of them, relative to the working directory")
