"""Load a taxonomy tree into `Leaf` records: every valid `qna.yaml` under the three branches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graftlm.errors import Location, TaxonomyError
from graftlm.taxonomy.diff import changed_leaves
from graftlm.taxonomy.layout import BRANCHES, QNA, leaf_files, leaf_name, relative_parts
from graftlm.taxonomy.model import QA, DocumentRef, KnowledgeSeed, Leaf, LeafType, SkillSeed
from graftlm.taxonomy.validate import FileReport, validate_file

MAX_LISTED_ERRORS = 20


def _attribution(folder: Path) -> dict[str, str]:
    """`attribution.txt` beside the leaf, as `Key: value` lines (Title, Link, License...)."""
    f = folder / "attribution.txt"
    out: dict[str, str] = {}
    try:
        if not f.is_file() or f.stat().st_size > 64 * 1024:
            return out
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() and value.strip():
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def _text(v: Any) -> str:
    return v.strip() if isinstance(v, str) else ""


def leaf_from_report(report: FileReport, root: Path) -> Leaf:
    """Build a `Leaf` from the report of a valid file."""
    if not report.valid or not isinstance(report.data, dict):
        raise TaxonomyError(f"{report.path} is not a valid leaf", hint=f"run: graft taxonomy validate {report.path}")
    data = report.data
    parts = relative_parts(report.path, root)
    branch = parts[0] if parts and parts[0] in BRANCHES else "compositional_skills"
    common: dict[str, Any] = {
        "name": leaf_name(report.path, root),
        "path": Path(report.path),
        "branch": branch,
        "version": report.version or 1,
        "created_by": _text(data.get("created_by")),
        "attribution": _attribution(Path(report.path).parent),
    }
    if report.schema == "knowledge":
        doc = data["document"]
        seeds = tuple(
            KnowledgeSeed(context=_text(s["context"]),
                          qas=tuple(QA(_text(q["question"]), _text(q["answer"])) for q in s["questions_and_answers"]))
            for s in data["seed_examples"]
        )
        return Leaf(type=LeafType.KNOWLEDGE, domain=_text(data.get("domain")),
                    document_outline=_text(data.get("document_outline")),
                    document=DocumentRef(repo=doc["repo"].strip(), commit=doc["commit"].strip(),
                                         patterns=tuple(p.strip() for p in doc["patterns"])),
                    knowledge_seeds=seeds, **common)
    skill_seeds = tuple(
        SkillSeed(question=_text(s["question"]), answer=_text(s["answer"]),
                  context=_text(s["context"]) if s.get("context") is not None else None)
        for s in data["seed_examples"]
    )
    grounded = any(s.context for s in skill_seeds)  # as InstructLab: seeds with a context make it grounded
    return Leaf(type=LeafType.GROUNDED_SKILL if grounded else LeafType.FREEFORM_SKILL,
                task_description=_text(data.get("task_description")), skill_seeds=skill_seeds, **common)


def _invalid_error(reports: list[FileReport]) -> TaxonomyError:
    bad = [r for r in reports if not r.valid]
    lines = []
    for r in bad:
        for e in r.errors:
            loc = Location(str(r.path), e.line, e.column, e.field or None)
            lines.append(f"{loc}: {e.message}")
    shown = lines[:MAX_LISTED_ERRORS]
    more = f"\n  ... and {len(lines) - len(shown)} more" if len(lines) > len(shown) else ""
    first = bad[0].errors[0] if bad[0].errors else None
    return TaxonomyError(
        f"{len(bad)} invalid taxonomy file(s):\n  " + "\n  ".join(shown) + more,
        hint=f"fix them, then check with: graft taxonomy validate {' '.join(str(r.path) for r in bad[:3])}",
        location=Location(str(bad[0].path), first.line if first else None) if len(bad) == 1 else None,
    )


def parse_leaf(path: Path, root: Path | None = None) -> Leaf:
    """Validate and load one leaf (`qna.yaml` or its folder). Raises TaxonomyError when it is invalid.
    `root` is the taxonomy root the leaf name is taken from (default: found from the branch folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / QNA
    report = validate_file(path)
    if not report.valid:
        raise _invalid_error([report])
    return leaf_from_report(report, Path(root) if root is not None else path.parent)


def load_leaves(files: list[Path], root: Path) -> list[Leaf]:
    """Validate and load the given `qna.yaml` files; raises TaxonomyError listing every invalid one."""
    reports = [validate_file(f) for f in files]
    if any(not r.valid for r in reports):
        raise _invalid_error(reports)
    return [leaf_from_report(r, root) for r in reports]


def _check_root(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise TaxonomyError(f"taxonomy folder not found: {root}",
                            hint="pass the root of a taxonomy (the folder holding knowledge/ and compositional_skills/)")
    return root


def load_taxonomy(root: Path) -> list[Leaf]:
    """Every leaf under `knowledge/`, `compositional_skills/` and `foundational_skills/` of `root`, sorted
    by name. Raises TaxonomyError listing the invalid files if any file is invalid; an empty
    taxonomy gives an empty list."""
    root = _check_root(root)
    return sorted(load_leaves(leaf_files(root), root), key=lambda leaf: leaf.name)


def select_leaves(root: Path, base: str | None = None, names: list[str] | None = None) -> list[Leaf]:
    """The leaves to work on: all of them (`base=None`), or those changed against the git ref `base`
    (`"empty"` = all, as InstructLab), then, if `names` is given, only the leaves with those names
    (`a->b->c`, its file-safe form, or its folder path relative to the root)."""
    root = _check_root(root)
    if base is None:
        files = leaf_files(root)
    else:
        files = changed_leaves(root, base)
    if names:
        wanted = {n.strip().rstrip("/") for n in names}
        chosen = []
        found: set[str] = set()
        for f in files:
            name = leaf_name(f, root)
            aliases = {name, name.replace("->", "/"), name.replace("->", "_")}
            hit = wanted & aliases
            if hit:
                chosen.append(f)
                found |= hit
        missing = sorted(wanted - found)
        if missing:
            known = [leaf_name(f, root) for f in files]
            raise TaxonomyError(
                f"no leaf named {', '.join(missing)} among the {len(known)} selected leaves",
                hint="leaf names look like `compositional_skills->writing->poem`; the selected ones are: "
                     + (", ".join(known[:20]) or "none") + (" ..." if len(known) > 20 else ""))
        files = chosen
    return sorted(load_leaves(files, root), key=lambda leaf: leaf.name)
