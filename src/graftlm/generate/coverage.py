"""Coverage accounting: how many training views each fact of a knowledge leaf kept.

A knowledge leaf's facts are the fact records its units journal (`UnitResult.facts`, one per atomic fact of
a chunk: `fact_id`, `leaf`, `chunk_id`, `doc`, `span`, `text`, `source`). At finish they are deduplicated
across the leaf's chunks (`dedup_facts`) and each gets the split part of its chunk. A fact's *views* are the
samples kept for training whose `metadata.fact_ids` name it (or a duplicate of it); a model extracts a fact
reliably only when it saw it in several renderings (Physics of Language Models 3.1), so `leaf_coverage`
counts per fact, not per token: the fewest and the median views, the facts under `generate.views.target`,
and the facts with no kept view at all, by name.

Only facts of training chunks that are not duplicates are counted; facts of held-out chunks (test and
selection) are never trained on and are counted as `held_out`, so `facts + held_out + duplicates` is every
fact found. `estimate_coverage` is the dry-run plan's estimate of the same numbers before any teacher call.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graftlm.config.generate import GenerateConfig
from graftlm.generate.chunking import sentences
from graftlm.generate.dedup import NearDuplicateIndex
from graftlm.generate.split import TRAIN

STATED_SHARE = 0.5
"""A text states a fact when it states at least this share of the fact's key facts
(`graftlm.evaluate.facts.fact_recall`: numbers with units, dates, names, quoted terms; content words when the
fact has none)."""

WORDS_PER_FACT = 12
"""`generate.facts: teacher`, dry-run estimate only: words of document text per atomic fact the teacher
lists (about one fact per short sentence; a long sentence holds two or three)."""

SHOWN_UNCOVERED = 5
"""Facts without a kept view that `graft generate`'s summary names per leaf (the rest are counted)."""


@dataclass(frozen=True)
class Coverage:
    """One knowledge leaf's coverage: kept training views per fact of its training chunks."""

    facts: int
    """Facts counted: of training chunks, not duplicates."""
    held_out: int
    """Facts (not duplicates) of held-out chunks (test and selection): never trained on."""
    duplicates: int
    """Facts that near-duplicate another fact of the leaf (their views count for that fact)."""
    views_min: int
    views_median: float
    target: int
    under_target: int
    """Counted facts with fewer than `target` kept views."""
    by_view: Mapping[str, int] = field(default_factory=dict)
    """Kept training samples per view kind (`qa`, `reverse_qa`, `paraphrase`, `relation`, `rewrite:...`)."""
    uncovered: tuple[str, ...] = ()
    """Texts of the counted facts without any kept view, in document order."""

    def to_json(self) -> dict[str, Any]:
        """The manifest's `leaves[name]["coverage"]` (docs/contracts.md)."""
        return {"facts": self.facts, "held_out": self.held_out, "duplicates": self.duplicates,
                "views_min": self.views_min, "views_median": self.views_median, "target": self.target,
                "under_target": self.under_target, "by_view": dict(sorted(self.by_view.items())),
                "uncovered": list(self.uncovered)}


def dedup_facts(facts: Sequence[dict[str, Any]], threshold: float,
                part_of: Callable[[str], str]) -> list[dict[str, Any]]:
    """Copies of a leaf's fact records with `part` (`part_of(chunk_id)`: `train`, `test` or `selection`) and
    `duplicate_of` (the id of an earlier fact whose text is a near-duplicate at `threshold`, per
    `NearDuplicateIndex`; else None). Facts of training chunks are indexed first, so a fact stated in a
    training chunk and a held-out one is kept as the training chunk's. A record repeated with the same
    `fact_id` is kept once. The order of `facts` is kept."""
    records: dict[str, dict[str, Any]] = {}
    for f in facts:
        if f["fact_id"] not in records:
            records[f["fact_id"]] = {**f, "part": part_of(f["chunk_id"]), "duplicate_of": None}
    index = NearDuplicateIndex(threshold)
    for rec in sorted(records.values(), key=lambda r: r["part"] != TRAIN):  # stable: document order within
        hit = index.match(rec["text"])
        if hit is None:
            index.add(rec["fact_id"], rec["text"])
        else:
            rec["duplicate_of"] = hit[0]
    return list(records.values())


def _canonical(facts: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each fact id mapped to the fact it finally duplicates (itself when it is no duplicate)."""
    parent = {f["fact_id"]: f.get("duplicate_of") or f["fact_id"] for f in facts}
    out = {}
    for fid in parent:
        seen, cur = {fid}, parent[fid]
        while parent.get(cur, cur) != cur and cur not in seen:
            seen.add(cur)
            cur = parent[cur]
        out[fid] = cur
    return out


def views_per_fact(facts: Sequence[dict[str, Any]], kept: Sequence[dict[str, Any]]) -> Counter[str]:
    """Kept samples per fact id, a duplicate's views counted for the fact it duplicates; a sample counts
    once per fact however many of its `fact_ids` name it."""
    canonical = _canonical(facts)
    views: Counter[str] = Counter()
    for sample in kept:
        ids = sample["metadata"].get("fact_ids") or []
        views.update({canonical[i] for i in ids if i in canonical})
    return views


def leaf_coverage(facts: Sequence[dict[str, Any]], kept: Sequence[dict[str, Any]], target: int) -> Coverage:
    """Coverage of one leaf from its fact records (after `dedup_facts`) and its samples kept for training."""
    views = views_per_fact(facts, kept)
    counted = [f for f in facts if f.get("part") == TRAIN and not f.get("duplicate_of")]
    counts = [views[f["fact_id"]] for f in counted]
    by_view = Counter(str(s["metadata"]["view"]) for s in kept if s["metadata"].get("view"))
    return Coverage(
        facts=len(counted),
        held_out=sum(1 for f in facts if f.get("part") != TRAIN and not f.get("duplicate_of")),
        duplicates=sum(1 for f in facts if f.get("duplicate_of")),
        views_min=min(counts, default=0),
        views_median=float(statistics.median(counts)) if counts else 0.0,
        target=target,
        under_target=sum(1 for n in counts if n < target),
        by_view=dict(by_view),
        uncovered=tuple(f["text"] for f, n in zip(counted, counts, strict=True) if n == 0),
    )


def facts_stated(facts: Sequence[dict[str, Any]], text: str) -> list[str]:
    """Ids of the facts `text` states: at least `STATED_SHARE` of a fact's key facts are in it. For the
    `fact_ids` of passages written from a whole chunk (relation passages, rewrites)."""
    from graftlm.evaluate.facts import fact_recall

    return [f["fact_id"] for f in facts if fact_recall(text, f["text"]).score >= STATED_SHARE]


# -- the dry-run estimate -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CoverageEstimate:
    """Estimated facts and views of one knowledge leaf, before any teacher call."""

    facts: int
    views: int
    """Samples written from facts: facts x (qa + question + cloze + reverse_qa + paraphrase), plus relation passages and
    rewrites per chunk (before dedup, split and cap)."""
    basis: str
    """`sentences` (the chunks' sentences were counted) or `words` (estimated from the word count)."""

    @property
    def views_per_fact(self) -> float:
        return self.views / self.facts if self.facts else 0.0


def estimate_coverage(texts: Sequence[str], chunks: int, config: GenerateConfig) -> CoverageEstimate | None:
    """Facts and views of a leaf whose documents are `texts` in `chunks` chunks, as `config` would make them:
    `facts: sentences` counts the sentences (`graftlm.generate.chunking.sentences`), `facts: teacher` assumes
    one fact per `WORDS_PER_FACT` words. None for `facts: off` (no facts, no coverage)."""
    if config.facts == "off":
        return None
    if config.facts == "sentences":
        facts, basis = sum(len(sentences(t)) for t in texts), "sentences"
    else:
        facts, basis = math.ceil(sum(len(t.split()) for t in texts) / WORDS_PER_FACT), "words"
    v = config.views
    views = facts * (v.qa_per_fact + v.paraphrase) + chunks * (v.relations + len(v.rewrites))
    return CoverageEstimate(facts, views, basis)


# -- shown by `graft generate` and the report ---------------------------------------------------------------

COVERAGE_HEADERS = ("leaf", "facts", "held out", "duplicates", "views min", "views median", "under target",
                    "uncovered")


def coverage_row(leaf: str, cov: Mapping[str, Any]) -> list[str]:
    """A table row of a manifest's `coverage` entry (the summary of `graft generate` and the report)."""
    median = cov.get("views_median")
    return [leaf, str(cov.get("facts", "-")), str(cov.get("held_out", "-")), str(cov.get("duplicates", "-")),
            str(cov.get("views_min", "-")), f"{median:g}" if isinstance(median, (int, float)) else "-",
            f"{cov.get('under_target', '-')} (< {cov.get('target', '?')})", str(len(cov.get("uncovered") or []))]


def uncovered_text(leaf: str, cov: Mapping[str, Any], limit: int | None = SHOWN_UNCOVERED) -> str | None:
    """`leaf: N facts without a kept training view: "...", "..." and K more` (None when every fact has one);
    `limit=None` names them all."""
    names = list(cov.get("uncovered") or [])
    if not names:
        return None
    shown = names if limit is None else names[:limit]
    more = len(names) - len(shown)
    return (f"{leaf}: {len(names)} fact{'s' if len(names) != 1 else ''} without a kept training view: "
            + "; ".join(f'"{n}"' for n in shown) + (f"; and {more} more" if more else ""))
