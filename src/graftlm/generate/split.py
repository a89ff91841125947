"""Held-out splits without leakage: whole source groups, never single items, leave training.

A group is what a generated item was made from: a document chunk (knowledge) or a seed context (grounded
skills); freeform skill items share no source text and are their own groups. Sibling Q&A of one chunk come from the same teacher call and share
their facts, so a per-item split would keep the answers of the test questions in training. Each leaf's
groups are dealt, seeded, into three parts: **test** (reported by `graft eval`), **selection** (scores
checkpoints during training, never reported) and **train**. Nothing of a held-out group is trained on,
not even the chunk's summaries and fact lists. A leaf with too few groups for three parts falls back to a
per-item split and says so (`SplitPlan.note`), for the manifest and the report.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

TEST, SELECTION, TRAIN = "test", "selection", "train"


@dataclass(frozen=True)
class SplitPlan:
    """Which groups of one leaf are held out; `note` says why held-out items may share a source with
    training data (empty when they cannot)."""

    by: str
    groups: int
    test: frozenset[str] = field(default_factory=frozenset)
    selection: frozenset[str] = field(default_factory=frozenset)
    note: str = ""

    def part(self, group: str) -> str:
        return TEST if group in self.test else SELECTION if group in self.selection else TRAIN

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "groups": self.groups, "test": sorted(self.test), "selection": sorted(self.selection),
                "leakage": self.note or None}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SplitPlan:
        """The plan `to_json` wrote (an empty dict: nothing held out)."""
        return cls(str(d.get("by", "")), int(d.get("groups", 0)), frozenset(d.get("test") or ()),
                   frozenset(d.get("selection") or ()), str(d.get("leakage") or ""))


def group_of(sample: dict[str, Any]) -> str:
    """The source group of a generated sample (a `train.jsonl` record): its chunk (knowledge), its seed
    context (grounded skills), else the sample itself (freeform skills share no source text)."""
    meta = sample["metadata"]
    if meta.get("chunk_id"):
        return f"chunk:{meta['chunk_id']}"
    if meta.get("context"):
        return f"seed:{meta.get('seed')}"
    return f"sample:{sample['id']}"


def plan_split(groups: list[str], test_share: float, selection_share: float, seed: str, by: str) -> SplitPlan:
    """Deal whole groups: ceil(share * n) to test and to selection (none for a share of 0), at least one left
    for training. Too few groups: an empty plan with a note (the caller then splits per item)."""
    unique = sorted(set(groups))
    n = len(unique)
    n_test = math.ceil(n * test_share) if test_share > 0 else 0
    n_sel = math.ceil(n * selection_share) if selection_share > 0 else 0
    if not n_test and not n_sel:
        return SplitPlan(by, n)
    if n - n_test - n_sel < 1:
        return SplitPlan(by, n, note=f"only {n} {by}s: too few to hold whole {by}s out, so held-out items share "
                                     f"{by}s with the training data")
    rng = random.Random(f"{seed}:split")
    rng.shuffle(unique)
    return SplitPlan(by, n, frozenset(unique[:n_test]), frozenset(unique[n_test:n_test + n_sel]))


def per_item_parts(ids: list[str], test_share: float, selection_share: float, seed: str) -> dict[str, str]:
    """The fallback for leaves with too few groups: items dealt one by one to test and selection."""
    rng = random.Random(f"{seed}:items")
    order = sorted(ids)
    rng.shuffle(order)
    n_test, n_sel = int(len(ids) * test_share), int(len(ids) * selection_share)
    parts = {i: TEST for i in order[:n_test]}
    parts.update({i: SELECTION for i in order[n_test:n_test + n_sel]})
    return parts
