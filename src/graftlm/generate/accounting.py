"""Per-leaf accounting: candidates generated, rejected by stage with reason counts, duplicates, kept.

Every candidate ends in exactly one bucket, so for each leaf
`generated == sum(rejected) + duplicates + eval_generated + kept`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from graftlm.generate.coverage import Coverage

CORE_TASKS = ("qa", "skill")
"""Tasks that count as the leaf's yield (auxiliary knowledge tasks do not)."""


@dataclass
class LeafAccount:
    type: str
    branch: str
    generated: int = 0
    rejected: dict[str, Counter[str]] = field(default_factory=dict)
    duplicates: int = 0
    kept: int = 0
    eval_items: int = 0
    eval_generated: int = 0
    by_task: Counter[str] = field(default_factory=Counter)
    split: dict[str, Any] = field(default_factory=dict)
    """How held-out items were split off (`graftlm.generate.split.SplitPlan.to_json`)."""
    coverage: Coverage | None = None
    """Knowledge leaves with facts: kept training views per fact (`graftlm.generate.coverage`)."""

    def reject(self, stage: str, reason: str) -> None:
        self.rejected.setdefault(stage, Counter())[reason] += 1

    @property
    def rejected_total(self) -> int:
        return sum(sum(c.values()) for c in self.rejected.values())

    def to_json(self) -> dict[str, Any]:
        """The manifest's per-leaf entry (docs/contracts.md)."""
        return {
            "type": self.type,
            "branch": self.branch,
            "generated": self.generated,
            "rejected": {stage: dict(c.most_common()) for stage, c in sorted(self.rejected.items())},
            "duplicates": self.duplicates,
            "kept": self.kept,
            "eval_items": self.eval_items,
            "eval_generated": self.eval_generated,
            "by_task": dict(sorted(self.by_task.items())),
            "split": self.split,
        } | ({"coverage": self.coverage.to_json()} if self.coverage is not None else {})

    def warning(self, leaf: str) -> str | None:
        """A clear warning when the leaf yielded no training sample: the stage that lost the most
        candidates and its top reasons."""
        if any(self.by_task.get(task) for task in CORE_TASKS):
            return None
        if not self.rejected:
            if self.duplicates:
                return f"leaf {leaf} yielded no Q&A or skill samples: all {self.duplicates} candidates were near-duplicates"
            return f"leaf {leaf} yielded no Q&A or skill samples: the teacher produced no candidates"
        stage, counts = max(self.rejected.items(), key=lambda kv: sum(kv[1].values()))
        top = ", ".join(f"{reason} ({n})" for reason, n in counts.most_common(3))
        return (f"leaf {leaf} yielded no Q&A or skill samples: most candidates were rejected at stage "
                f"'{stage}': {top}; check the teacher follows the prompts with `graft generate --preview`")


def table(accounts: dict[str, LeafAccount]) -> list[tuple[str, ...]]:
    """Rows for the end-of-run table: leaf, type, generated, rejected (top stage), duplicates, eval, kept."""
    rows: list[tuple[str, ...]] = []
    for name, a in accounts.items():
        if a.rejected:
            stage, counts = max(a.rejected.items(), key=lambda kv: sum(kv[1].values()))
            worst = f"{a.rejected_total} (most at {stage})"
        else:
            worst = "0"
        rows.append((name, a.type, str(a.generated), worst, str(a.duplicates), str(a.eval_items), str(a.kept)))
    return rows


TABLE_HEADERS = ("leaf", "type", "generated", "rejected", "duplicates", "eval", "kept")
