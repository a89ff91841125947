"""Statistics for honest scores: means with 95% bootstrap intervals and paired base-vs-trained tests.

Every reported score carries its sample size and interval; every difference carries a paired test, so a
user can tell a real gain from noise on a few dozen questions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ALPHA = 0.05


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% bootstrap interval over `n` items."""

    mean: float | None
    n: int
    ci: tuple[float, float] | None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci else None
        return d


@dataclass(frozen=True)
class Comparison:
    """Trained minus base on the same items: mean difference, its paired-bootstrap 95% interval, and the
    two-sided p-value of a paired sign-flip permutation test (exact for small n)."""

    diff: float | None
    n: int
    ci: tuple[float, float] | None
    p_value: float | None
    wins: int
    losses: int
    ties: int
    test: str = "paired permutation (sign-flip)"

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA

    @property
    def verdict(self) -> str:
        """`better`, `worse`, `not significant`, or `no data`."""
        if self.diff is None or self.p_value is None:
            return "no data"
        if not self.significant:
            return "not significant"
        return "better" if self.diff > 0 else "worse"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci else None
        d["significant"] = self.significant
        d["verdict"] = self.verdict
        return d


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def estimate(values: Sequence[float | None], *, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Mean and percentile-bootstrap 95% interval. One value gives a zero-width interval; none gives None."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return Estimate(None, 0, None)
    mean = float(x.mean())
    if x.size == 1:
        return Estimate(mean, 1, (mean, mean))
    idx = _rng(seed).integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return Estimate(mean, int(x.size), (float(lo), float(hi)))


def compare(base: Sequence[float | None], trained: Sequence[float | None], *, n_boot: int = 1000,
            seed: int = 0) -> Comparison:
    """Paired comparison over items scored for both models (pairs with a missing side are dropped)."""
    if len(base) != len(trained):
        raise ValueError(f"paired samples differ in length: {len(base)} vs {len(trained)}")
    pairs = [(b, t) for b, t in zip(base, trained, strict=True) if b is not None and t is not None]
    if not pairs:
        return Comparison(None, 0, None, None, 0, 0, 0)
    d = np.asarray([t - b for b, t in pairs], dtype=float)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    ties = int(d.size - wins - losses)
    diff = float(d.mean())
    rng = _rng(seed)
    if d.size == 1:
        ci: tuple[float, float] = (diff, diff)
    else:
        idx = rng.integers(0, d.size, size=(n_boot, d.size))
        lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
        ci = (float(lo), float(hi))
    return Comparison(diff, int(d.size), ci, permutation_p(d, n_perm=max(n_boot, 2000), rng=rng),
                      wins, losses, ties)


def permutation_p(d: np.ndarray, *, n_perm: int = 2000, rng: np.random.Generator | None = None) -> float:
    """Two-sided p-value of the paired sign-flip test of mean(d) == 0. Exact enumeration up to 16 nonzero
    differences, Monte Carlo (with the +1 correction) above."""
    nz = d[d != 0]
    if nz.size == 0:
        return 1.0
    observed = abs(nz.sum())
    tol = 1e-12 * max(1.0, observed)
    if nz.size <= 16:
        signs = ((np.arange(2 ** nz.size)[:, None] >> np.arange(nz.size)) & 1) * 2 - 1
        sums = np.abs(signs @ nz)
        return float((sums >= observed - tol).mean())
    rng = rng or _rng(0)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, nz.size))
    sums = np.abs(signs @ nz)
    return float(((sums >= observed - tol).sum() + 1) / (n_perm + 1))


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided binomial sign test on wins vs losses (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)
