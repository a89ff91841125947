"""YAML loading that remembers where each value came from (line and column, 1-based)."""

from __future__ import annotations

from collections.abc import Iterator

import yaml

Path_ = tuple[str | int, ...]


def compose(text: str) -> yaml.Node | None:
    """Compose one YAML document into a node tree (no object construction, so no alias expansion)."""
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _key(k: yaml.Node) -> str:
    return k.value if isinstance(k, yaml.ScalarNode) else str(k.start_mark)


def walk(node: yaml.Node | None) -> Iterator[tuple[yaml.Node, Path_]]:
    """Every node with its path, depth first. A node reached again through an alias is yielded at its new
    path but not walked into again (no alias expansion)."""
    stack: list[tuple[yaml.Node, Path_]] = [(node, ())] if node is not None else []
    seen: set[int] = set()
    while stack:
        n, path = stack.pop()
        yield n, path
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            stack.extend((v, (*path, _key(k))) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in enumerate(n.value))


def positions(node: yaml.Node | None) -> dict[Path_, tuple[int, int]]:
    """Map each path (`("seed_examples", 3, "answer")`) to the (line, column) of its value node.
    Mapping keys are also recorded under the path plus a trailing `"<key>"` marker."""
    out: dict[Path_, tuple[int, int]] = {}
    for n, path in walk(node):
        out.setdefault(path, (n.start_mark.line + 1, n.start_mark.column + 1))
        if isinstance(n, yaml.MappingNode):
            for k, _ in n.value:
                out.setdefault((*path, _key(k), "<key>"), (k.start_mark.line + 1, k.start_mark.column + 1))
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
    checked: set[int] = set()
    for n, path in walk(node):
        if not isinstance(n, yaml.MappingNode) or id(n) in checked:
            continue
        checked.add(id(n))
        first: dict[str, int] = {}
        for k, _ in n.value:
            if isinstance(k, yaml.ScalarNode):
                line = k.start_mark.line + 1
                if k.value in first:
                    out.append(((*path, k.value), first[k.value], line))
                first.setdefault(k.value, line)
    return sorted(out, key=lambda d: d[2])
