"""Statistics for honest scores: means with 95% intervals, paired base-vs-trained tests, Holm correction.

Every reported score carries its sample size, its number of clusters and its interval; every difference
carries a paired test, so a user can tell a real gain from noise on a few dozen questions.

- Items that share a source (a document chunk, a seed) are not independent: intervals resample whole
  clusters (cluster bootstrap) and the paired test flips the sign of whole clusters.
- The interval of a difference is the paired sign-flip test inverted: every shift the test does not reject.
  It excludes 0 exactly when the test's p < 0.05, so the two never disagree, at any n. With five clusters
  or fewer the test cannot reject anything at 5% and the interval is the whole possible range.
- No interval below two items (or two clusters): one number has no spread to measure.
- Holm's step-down correction across the comparisons of one report decides which are significant.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ALPHA = 0.05
EXACT_MAX_CLUSTERS = 12
"""Up to this many clusters the sign-flip test enumerates every sign pattern; above, it samples them."""


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% (cluster) bootstrap interval over `n` items in `clusters` clusters; no interval
    below two items or two clusters."""

    mean: float | None
    n: int
    ci: tuple[float, float] | None
    clusters: int = 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci else None
        return d


@dataclass(frozen=True)
class Comparison:
    """Trained minus base on the same items: mean difference, the two-sided p-value of a paired sign-flip
    permutation test over clusters (exact up to 12 clusters), and the 95% interval that inverts that test.
    `p_adjusted` is set by `holm` when the comparison is one of several in a report."""

    diff: float | None
    n: int
    ci: tuple[float, float] | None
    p_value: float | None
    wins: int
    losses: int
    ties: int
    clusters: int = 0
    test: str = "paired permutation (sign-flip over clusters)"
    interval: str = "inverted sign-flip test"

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA

    @property
    def verdict(self) -> str:
        """`better`, `worse`, `not significant`, or `no data`."""
        return decide(self.diff, self.p_value)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci else None
        d["significant"] = self.significant
        d["verdict"] = self.verdict
        return d


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _cluster_ids(n: int, clusters: Sequence[Hashable] | None) -> np.ndarray:
    if clusters is None:
        return np.arange(n)
    if len(clusters) != n:
        raise ValueError(f"{len(clusters)} cluster labels for {n} values")
    index: dict[Hashable, int] = {}
    return np.asarray([index.setdefault(c, len(index)) for c in clusters], dtype=int)


def estimate(values: Sequence[float | None], *, clusters: Sequence[Hashable] | None = None, n_boot: int = 1000,
             seed: int = 0) -> Estimate:
    """Mean and 95% percentile-bootstrap interval, resampling whole clusters when `clusters` labels the
    values (one label per value, None values dropped with theirs). No interval below 2 items or clusters."""
    keep = [i for i, v in enumerate(values) if v is not None]
    x = np.asarray([values[i] for i in keep], dtype=float)
    if x.size == 0:
        return Estimate(None, 0, None)
    ids = _cluster_ids(len(values), clusters)[keep]
    _, ids = np.unique(ids, return_inverse=True)
    k = int(ids.max()) + 1
    mean = float(x.mean())
    if x.size < 2 or k < 2:
        return Estimate(mean, int(x.size), None, k)
    sums = np.bincount(ids, weights=x, minlength=k)
    sizes = np.bincount(ids, minlength=k).astype(float)
    pick = _rng(seed).integers(0, k, size=(n_boot, k))
    means = sums[pick].sum(axis=1) / sizes[pick].sum(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return Estimate(mean, int(x.size), (float(lo), float(hi)), k)


def compare(base: Sequence[float | None], trained: Sequence[float | None], *,
            clusters: Sequence[Hashable] | None = None, n_boot: int = 1000, seed: int = 0,
            bounds: tuple[float, float] | None = None) -> Comparison:
    """Paired comparison over items scored for both models (pairs with a missing side are dropped).
    `bounds`: the smallest and largest possible difference, the interval when too few clusters bound it."""
    if len(base) != len(trained):
        raise ValueError(f"paired samples differ in length: {len(base)} vs {len(trained)}")
    ids_all = _cluster_ids(len(base), clusters)
    keep = [i for i, (b, t) in enumerate(zip(base, trained, strict=True)) if b is not None and t is not None]
    if not keep:
        return Comparison(None, 0, None, None, 0, 0, 0)
    d = np.asarray([float(trained[i] or 0.0) - float(base[i] or 0.0) for i in keep], dtype=float)
    _, ids = np.unique(ids_all[keep], return_inverse=True)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    ties = int(d.size - wins - losses)
    sums = np.bincount(ids, weights=d)
    sizes = np.bincount(ids).astype(float)
    test = SignFlip(sums, sizes, n_perm=max(n_boot, 2000), seed=seed)
    p = test.p(0.0)
    ci = test.interval(bounds) if d.size >= 2 and sums.size >= 2 else None
    return Comparison(float(d.mean()), int(d.size), ci, p, wins, losses, ties, int(sums.size))


class SignFlip:
    """The paired sign-flip test of "mean difference = delta" over cluster sums `sums` of `sizes` items: the
    statistic is |sum over clusters of (sum_c - size_c * delta)|, compared with the same sum under every
    (or, above `EXACT_MAX_CLUSTERS`, a fixed random sample of) sign pattern(s)."""

    def __init__(self, sums: np.ndarray, sizes: np.ndarray, *, n_perm: int = 2000, seed: int = 0) -> None:
        self.sums, self.sizes = sums, sizes
        k = sums.size
        self.exact = k <= EXACT_MAX_CLUSTERS
        if self.exact:
            self.signs = (((np.arange(2 ** k)[:, None] >> np.arange(k)) & 1) * 2 - 1).astype(float)
        else:
            self.signs = _rng(seed).choice(np.array([-1.0, 1.0]), size=(n_perm, k))

    def p(self, delta: float) -> float:
        x = self.sums - self.sizes * delta
        observed = abs(x.sum())
        tol = 1e-9 * max(1.0, float(np.abs(x).sum()))
        hits = int((np.abs(self.signs @ x) >= observed - tol).sum())
        if self.exact:
            return hits / self.signs.shape[0]
        return (hits + 1) / (self.signs.shape[0] + 1)

    def interval(self, bounds: tuple[float, float] | None, alpha: float = ALPHA) -> tuple[float, float] | None:
        """Every delta the test does not reject at `alpha`, as [lower, upper]; `bounds` (or None) where the
        test cannot reject at any delta (too few clusters)."""
        means = self.sums / self.sizes
        center = float(self.sums.sum() / self.sizes.sum())
        span = float(means.max() - means.min()) or 1.0
        outer_lo, outer_hi = float(means.min()) - span, float(means.max()) + span
        if self.p(outer_lo) >= alpha or self.p(outer_hi) >= alpha:
            return bounds
        lo = self._edge(outer_lo, center, alpha)
        hi = self._edge(outer_hi, center, alpha)
        if self.p(0.0) >= alpha:  # a test that does not reject 0 gives an interval that holds 0
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        return (lo, hi)

    def _edge(self, rejected: float, accepted: float, alpha: float) -> float:
        for _ in range(60):
            mid = (rejected + accepted) / 2
            if self.p(mid) >= alpha:
                accepted = mid
            else:
                rejected = mid
        return accepted


def permutation_p(d: np.ndarray, *, n_perm: int = 2000, rng: np.random.Generator | None = None) -> float:
    """Two-sided p-value of the paired sign-flip test of mean(d) == 0 (each difference its own cluster).
    Exact enumeration up to 16 nonzero differences, Monte Carlo (with the +1 correction) above."""
    nz = d[d != 0]
    if nz.size == 0:
        return 1.0
    observed = abs(nz.sum())
    tol = 1e-12 * max(1.0, observed)
    if nz.size <= 16:
        signs = ((np.arange(2 ** nz.size)[:, None] >> np.arange(nz.size)) & 1) * 2 - 1
        return float((np.abs(signs @ nz) >= observed - tol).mean())
    rng = rng or _rng(0)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, nz.size))
    return float(((np.abs(signs @ nz) >= observed - tol).sum() + 1) / (n_perm + 1))


def decide(diff: float | None, p_value: float | None) -> str:
    """`better`, `worse`, `not significant` (p >= 0.05), or `no data`, for a trained-minus-base difference."""
    if diff is None or p_value is None:
        return "no data"
    if p_value >= ALPHA:
        return "not significant"
    return "better" if diff > 0 else "worse"


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error across the family given); None stays None."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided binomial sign test on wins vs losses (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class GapClosed:
    """Share of the open-book gap a trained model closed: (trained - base) / (open book - base), over the
    items scored for all three, with a 95% cluster-bootstrap interval. `share` is None when the open-book
    answers are no better than the closed-book base (no gap to close); `note` says why."""

    share: float | None
    n: int
    clusters: int
    base: float | None
    trained: float | None
    open_book: float | None
    ci: tuple[float, float] | None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci else None
        return d


MIN_GAP = 1e-9


def gap_closed(base: Sequence[float | None], trained: Sequence[float | None], open_book: Sequence[float | None],
               *, clusters: Sequence[Hashable] | None = None, n_boot: int = 1000, seed: int = 0) -> GapClosed:
    """The share of the gap closed, with a percentile interval from resampling whole clusters. Resamples
    whose open-book mean is not above the base mean have no share and are left out; the note says how many."""
    ids_all = _cluster_ids(len(base), clusters)
    keep = [i for i in range(len(base)) if base[i] is not None and trained[i] is not None and open_book[i] is not None]
    if not keep:
        return GapClosed(None, 0, 0, None, None, None, None, "no item was scored closed- and open-book")
    x = np.asarray([[base[i], trained[i], open_book[i]] for i in keep], dtype=float)
    _, ids = np.unique(ids_all[keep], return_inverse=True)
    k = int(ids.max()) + 1
    b, t, o = (float(v) for v in x.mean(axis=0))
    if o - b <= MIN_GAP:
        return GapClosed(None, len(keep), k, b, t, o, None,
                         "the open-book answers are no better than the closed-book base: no gap to close")
    share = (t - b) / (o - b)
    if len(keep) < 2 or k < 2:
        return GapClosed(share, len(keep), k, b, t, o, None, None)
    sums = np.stack([np.bincount(ids, weights=x[:, j], minlength=k) for j in range(3)], axis=1)
    sizes = np.bincount(ids, minlength=k).astype(float)
    pick = _rng(seed).integers(0, k, size=(n_boot, k))
    means = sums[pick].sum(axis=1) / sizes[pick].sum(axis=1)[:, None]
    gap = means[:, 2] - means[:, 0]
    ok = gap > MIN_GAP
    shares = (means[ok, 1] - means[ok, 0]) / gap[ok]
    dropped = int((~ok).sum())
    note = f"{dropped} of {n_boot} resamples had no gap and were left out of the interval" if dropped else None
    if shares.size < n_boot // 2:
        return GapClosed(share, len(keep), k, b, t, o, None, "the gap is too often absent in resamples for an interval")
    lo, hi = np.percentile(shares, [2.5, 97.5])
    return GapClosed(share, len(keep), k, b, t, o, (float(lo), float(hi)), note)
