"""Reading one YAML document safely, with the position of every node.

The document is built from the parser's events (libyaml's C parser when PyYAML has it), not by
PyYAML's recursive composer, so hostile input is caught while reading:
- nesting deeper than `MAX_DEPTH` stops the read (no recursion, no stack overflow);
- aliases are shared, never copied, and the size of the document with aliases expanded is counted
  as it is read: a "billion laughs" bomb stops at `MAX_EXPANDED_NODES`;
- duplicate mapping keys, unsupported tags, complex keys and a second document are reported.
Scalars get the same Python types as `yaml.safe_load` (int, float, bool, None, dates), so schema
checks see what InstructLab sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from graftlm.yamlpos import Path_

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists accepted (a qna.yaml needs 4)."""
MAX_EXPANDED_NODES = 500_000
"""Most nodes a document may have with every alias expanded (the largest community file has ~10,000)."""

_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"
_resolver = Resolver()
_constructor = SafeConstructor()


class YamlReadError(Exception):
    """The text is not one readable YAML document; `line`/`column` are 1-based."""

    def __init__(self, message: str, line: int = 1, column: int = 1, field: str = ""):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.field = field


@dataclass
class Problem:
    """A problem found while reading that does not stop the read (e.g. a duplicate key)."""

    line: int
    column: int
    path: Path_
    message: str


@dataclass
class Loaded:
    data: Any
    """The document as `yaml.safe_load` would return it (None for an empty document)."""
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    """(line, column) of each value by path, e.g. `("seed_examples", 3, "answer")`."""
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    """(line, column) of the key of each mapping entry, by the entry's path."""
    problems: list[Problem] = field(default_factory=list)

    def position(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Position of `path` (its key with `key=True`), else of its closest recorded ancestor."""
        p = tuple(path)
        if key and p in self.key_positions:
            return self.key_positions[p]
        while p:
            if p in self.positions:
                return self.positions[p]
            p = p[:-1]
        return self.positions.get((), (1, 1))


@dataclass
class _Frame:
    container: Any  # dict or list
    path: Path_
    anchor: str | None
    mark: tuple[int, int]
    size: int = 1
    key: Any = None
    has_key: bool = False
    key_mark: tuple[int, int] = (1, 1)
    key_is_merge: bool = False
    seen: dict[Any, int] = field(default_factory=dict)  # explicit key -> line
    merged: set[Any] = field(default_factory=set)


def _mark(m: Any) -> tuple[int, int]:
    return (m.line + 1, m.column + 1)


def _scalar(ev: Any) -> tuple[Any, bool]:
    """The Python value of a scalar event, and whether it is a merge key (`<<`)."""
    tag = ev.tag
    if tag is None or tag == "!":
        tag = _resolver.resolve(yaml.ScalarNode, ev.value, ev.implicit) if ev.implicit[0] else _STR
    if tag == _STR:
        return ev.value, False
    if tag == _MERGE:
        return ev.value, True
    construct = SafeConstructor.yaml_constructors.get(tag)
    line, col = _mark(ev.start_mark)
    if construct is None or tag in (_SEQ, _MAP):
        raise YamlReadError(f"unsupported YAML tag {tag!r}; remove the tag (a qna.yaml holds plain text)",
                            line, col)
    node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
    try:
        return construct(_constructor, node), False
    except Exception as e:  # e.g. a date like 2024-13-45 that matches the timestamp pattern
        raise YamlReadError(f"cannot read the value {ev.value!r}: {e}; quote it to make it text",
                            line, col) from None


def _describe_yaml_error(e: yaml.YAMLError) -> YamlReadError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    line, col = _mark(mark) if mark is not None else (1, 1)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    text = f"YAML syntax error: {problem}"
    if context:
        ctx_mark = getattr(e, "context_mark", None)
        where = f" started at line {ctx_mark.line + 1}" if ctx_mark is not None else ""
        text += f" ({context}{where})"
    hints = {
        "mapping values are not allowed": "a ': ' inside an unquoted value starts a mapping: quote the "
                                          "value or use a block scalar (`|` or `>`)",
        "could not find expected ':'": "check the indentation of this entry, or quote the value",
        "expected <block end>": "check the indentation: items of one list or mapping must line up",
        "expected a comment or a line break": "after `|` or `>` the text must start on the next line",
        "found character '\\t'": "YAML does not allow tabs for indentation: use spaces",
    }
    for needle, hint in hints.items():
        if needle in problem:
            text += f"; {hint}"
            break
    return YamlReadError(text, line, col)


def load_yaml(text: str) -> Loaded:
    """Read one YAML document. Raises `YamlReadError` when it cannot be read at all."""
    out = Loaded(data=None)
    anchors: dict[str, tuple[Any, int]] = {}
    stack: list[_Frame] = []
    total = 0
    documents = 0
    root_set = False
    ev: Any

    def child_path() -> Path_:
        if not stack:
            return ()
        top = stack[-1]
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        return (*top.path, top.key) if top.has_key else top.path

    def attach(value: Any, size: int, mark: tuple[int, int], *, is_merge: bool = False,
               record: bool = True) -> None:
        nonlocal total, root_set
        if not stack:
            out.data = value
            root_set = True
            return
        top = stack[-1]
        path = child_path()
        if isinstance(top.container, list):
            top.container.append(value)
            if record:
                out.positions.setdefault(path, mark)
        elif not top.has_key:
            if isinstance(value, (dict, list)):
                raise YamlReadError("a mapping key must be plain text, not a list or mapping", *mark)
            top.key, top.has_key, top.key_mark, top.key_is_merge = value, True, mark, is_merge
            return
        else:
            key = top.key
            top.has_key = False
            if top.key_is_merge:
                _merge(top, value, mark)
            else:
                if key in top.seen:
                    out.problems.append(Problem(*top.key_mark, path,
                                                f"the key {key!r} appears twice (first on line {top.seen[key]}); "
                                                "YAML keeps only the last one: remove or rename one of them"))
                top.seen[key] = top.key_mark[0]
                top.merged.discard(key)
                top.container[key] = value
                out.key_positions[path] = top.key_mark
                if record:
                    out.positions.setdefault(path, mark)
        top.size += size
        total += size
        if total > MAX_EXPANDED_NODES:
            raise YamlReadError(f"the document expands to more than {MAX_EXPANDED_NODES:,} values through "
                                "aliases (`*name`); this looks like a YAML bomb: remove the aliases", *mark)

    def _merge(top: _Frame, value: Any, mark: tuple[int, int]) -> None:
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(s, dict) for s in sources):
            raise YamlReadError("a merge key `<<` needs a mapping or a list of mappings", *mark)
        for src in sources:
            for k, v in src.items():
                if k not in top.seen and k not in top.merged:
                    top.container[k] = v
                    top.merged.add(k)

    try:
        for ev in yaml.parse(text, Loader=_Parser):
            kind = type(ev)
            if kind is yaml.ScalarEvent:
                value, is_merge = _scalar(ev)
                mark = _mark(ev.start_mark)
                attach(value, 1, mark, is_merge=is_merge)
                if ev.anchor:
                    anchors[ev.anchor] = (value, 1)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                mark = _mark(ev.start_mark)
                if ev.tag not in (None, "!", _MAP if kind is yaml.MappingStartEvent else _SEQ):
                    raise YamlReadError(f"unsupported YAML tag {ev.tag!r}; remove the tag", *mark)
                if len(stack) >= MAX_DEPTH:
                    raise YamlReadError(f"the document is nested more than {MAX_DEPTH} levels deep; a qna.yaml "
                                        "needs only a few levels", *mark)
                if stack and isinstance(stack[-1].container, dict) and not stack[-1].has_key:
                    raise YamlReadError("a mapping key must be plain text, not a list or mapping", *mark)
                path = child_path()
                out.positions.setdefault(path, mark)
                container: Any = {} if kind is yaml.MappingStartEvent else []
                stack.append(_Frame(container, path, ev.anchor, mark))
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                if isinstance(frame.container, dict) and frame.has_key:  # cannot happen with a valid stream
                    frame.container[frame.key] = None
                attach(frame.container, frame.size, frame.mark, record=False)
                if frame.anchor:
                    anchors[frame.anchor] = (frame.container, frame.size)
            elif kind is yaml.AliasEvent:
                mark = _mark(ev.start_mark)
                if ev.anchor not in anchors:
                    raise YamlReadError(f"the alias *{ev.anchor} refers to an anchor &{ev.anchor} that is not "
                                        "defined before it (or contains the alias itself)", *mark)
                value, size = anchors[ev.anchor]
                attach(value, size, mark)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise YamlReadError("the file holds more than one YAML document (a second `---`); "
                                        "a qna.yaml is one document", *_mark(ev.start_mark))
    except yaml.YAMLError as e:
        raise _describe_yaml_error(e) from None
    except RecursionError:
        raise YamlReadError(f"the document is nested too deeply (limit {MAX_DEPTH})") from None
    return out
