"""YAML loading that remembers where each value came from (line and column, 1-based)."""

from __future__ import annotations

import yaml

Path_ = tuple[str | int, ...]


def compose(text: str) -> yaml.Node | None:
    """Compose one YAML document into a node tree (no object construction, so no alias expansion)."""
    return yaml.compose(text, Loader=yaml.SafeLoader)


def positions(node: yaml.Node | None) -> dict[Path_, tuple[int, int]]:
    """Map each path (`("seed_examples", 3, "answer")`) to the (line, column) of its value node.
    Mapping keys are also recorded under the path plus a trailing `"<key>"` marker."""
    out: dict[Path_, tuple[int, int]] = {}
    if node is None:
        return out
    stack: list[tuple[yaml.Node, Path_]] = [(node, ())]
    seen: set[int] = set()
    while stack:
        n, path = stack.pop()
        out.setdefault(path, (n.start_mark.line + 1, n.start_mark.column + 1))
        if id(n) in seen:  # an alias points at a node already walked: do not expand it again
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k.start_mark)
                out.setdefault((*path, key, "<key>"), (k.start_mark.line + 1, k.start_mark.column + 1))
                stack.append((v, (*path, key)))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                stack.append((v, (*path, i)))
    return out


def lookup(pos: dict[Path_, tuple[int, int]], path: Path_) -> tuple[int, int] | None:
    """The position of `path`, or of its closest recorded ancestor."""
    p = tuple(path)
    while True:
        if p in pos:
            return pos[p]
        if not p:
            return None
        p = p[:-1]


def field_name(path: Path_) -> str:
    """`("seed_examples", 3, "answer")` -> `seed_examples[3].answer`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def duplicate_keys(node: yaml.Node | None) -> list[tuple[Path_, int, int]]:
    """Mapping keys given twice in the same mapping: (path of the key, line of the first, line of the
    second), in document order. YAML loaders silently keep the last value."""
    out: list[tuple[Path_, int, int]] = []
    if node is None:
        return out
    stack: list[tuple[yaml.Node, Path_]] = [(node, ())]
    seen: set[int] = set()
    while stack:
        n, path = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    line = k.start_mark.line + 1
                    if k.value in first:
                        out.append(((*path, k.value), first[k.value], line))
                    else:
                        first[k.value] = line
                    stack.append((v, (*path, k.value)))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in enumerate(n.value))
    return sorted(out, key=lambda d: d[2])
