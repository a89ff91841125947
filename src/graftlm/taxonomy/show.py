"""Sizes of a taxonomy's leaves against InstructLab's guidance, and the tree printed by `graft taxonomy show`.

Guidance (not schema rules): a context under 500 words, a question or answer under 250 words, and a
skill leaf's seed examples under about 2,300 words in total (they all go into one teacher prompt).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftlm.taxonomy.layout import leaf_name
from graftlm.taxonomy.model import Leaf
from graftlm.taxonomy.validate import FileReport

CONTEXT_WORDS = 500
QA_WORDS = 250
SKILL_LEAF_WORDS = 2300


def words(text: str | None) -> int:
    return len(text.split()) if text else 0


@dataclass
class LeafStats:
    name: str
    path: str
    type: str
    seeds: int
    qa_pairs: int
    words: int
    """All words of the seed examples (contexts, questions, answers)."""
    max_context_words: int
    max_qa_words: int
    flags: list[str] = field(default_factory=list)
    """Guidance the leaf goes over, one line each (`seed_examples[2].context has 612 words; ...`)."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "valid": True}


def leaf_stats(leaf: Leaf) -> LeafStats:
    """Seed counts and word counts of one leaf, with the guidance it goes over."""
    flags: list[str] = []
    total = max_ctx = max_qa = pairs = 0

    def check(text: str | None, where: str, limit: int) -> int:
        n = words(text)
        if n >= limit:
            flags.append(f"{where} has {n} words; keep it under {limit}")
        return n

    if leaf.is_knowledge:
        for i, ks in enumerate(leaf.knowledge_seeds):
            n = check(ks.context, f"seed_examples[{i}].context", CONTEXT_WORDS)
            max_ctx, total = max(max_ctx, n), total + n
            for j, qa in enumerate(ks.qas):
                pairs += 1
                for part, text in (("question", qa.question), ("answer", qa.answer)):
                    n = check(text, f"seed_examples[{i}].questions_and_answers[{j}].{part}", QA_WORDS)
                    max_qa, total = max(max_qa, n), total + n
        seeds = len(leaf.knowledge_seeds)
    else:
        for i, ss in enumerate(leaf.skill_seeds):
            pairs += 1
            if ss.context:
                n = check(ss.context, f"seed_examples[{i}].context", CONTEXT_WORDS)
                max_ctx, total = max(max_ctx, n), total + n
            for part, text in (("question", ss.question), ("answer", ss.answer)):
                n = check(text, f"seed_examples[{i}].{part}", QA_WORDS)
                max_qa, total = max(max_qa, n), total + n
        seeds = len(leaf.skill_seeds)
        if total > SKILL_LEAF_WORDS:
            flags.append(f"the seed examples have {total} words in total; keep a skill leaf under about "
                         f"{SKILL_LEAF_WORDS} (they all go into one teacher prompt)")
    return LeafStats(leaf.name, str(leaf.path), leaf.type.value, seeds, pairs, total, max_ctx, max_qa, flags)


def invalid_entry(report: FileReport, root: Path) -> dict[str, Any]:
    """The `--json` object of an invalid file: its leaf name and the validator's report."""
    return {"name": leaf_name(Path(report.path), root), **report.to_dict()}


def render_tree(stats: list[LeafStats], invalid: list[FileReport], root: Path) -> str:
    """The taxonomy as an indented tree: one line per folder, leaves with type, seeds and words."""
    entries: dict[tuple[str, ...], str] = {}
    notes: dict[tuple[str, ...], list[str]] = {}
    for s in stats:
        parts = tuple(s.name.split("->"))
        mark = "  OVER GUIDANCE" if s.flags else ""
        entries[parts] = f"{s.type}  {s.seeds} seeds  {s.qa_pairs} Q&A  {s.words} words{mark}"
        notes[parts] = s.flags
    for r in invalid:
        try:
            parts = Path(r.path).absolute().relative_to(Path(root).absolute()).parts[:-1]
        except ValueError:
            parts = (str(r.path),)
        entries[tuple(parts)] = f"INVALID: {len(r.errors)} error(s)"
        notes[tuple(parts)] = [f"{r.path}:{e.line}:{e.column}: {e.field + ': ' if e.field else ''}{e.message}"
                               for e in r.errors]
    lines: list[str] = []
    printed: set[tuple[str, ...]] = set()
    for parts in sorted(entries):
        for depth in range(1, len(parts)):
            prefix = parts[:depth]
            if prefix not in printed and prefix not in entries:
                printed.add(prefix)
                lines.append("  " * (depth - 1) + prefix[-1] + "/")
        printed.add(parts)
        indent = "  " * (len(parts) - 1)
        lines.append(f"{indent}{parts[-1] if parts else '.'}  [{entries[parts]}]")
        lines.extend(f"{indent}    ! {flag}" for flag in notes[parts])
    over = sum(1 for s in stats if s.flags)
    lines.append("")
    lines.append(f"{len(stats)} leaves ({sum(1 for s in stats if s.type == 'knowledge')} knowledge, "
                 f"{sum(1 for s in stats if s.type == 'freeform_skill')} freeform skill, "
                 f"{sum(1 for s in stats if s.type == 'grounded_skill')} grounded skill), "
                 f"{over} over the size guidance, {len(invalid)} invalid"
                 + (f" (details: graft taxonomy validate {root})" if invalid else ""))
    return "\n".join(lines)
