"""Means with bootstrap intervals, paired tests, judge-free metrics."""

from __future__ import annotations

import random

import numpy as np
import pytest

from graftlm.evaluate.metrics import lcs_length, rouge_l, token_f1
from graftlm.evaluate.stats import ALPHA, compare, estimate, holm, permutation_p, sign_test_p


def test_estimate_interval_contains_mean_and_shrinks_with_n() -> None:
    rng = random.Random(0)
    small = [rng.gauss(5, 2) for _ in range(10)]
    large = [rng.gauss(5, 2) for _ in range(400)]
    e_small, e_large = estimate(small, seed=1), estimate(large, seed=1)
    assert e_small.n == 10 and e_small.ci is not None and e_small.mean is not None
    assert e_small.ci[0] <= e_small.mean <= e_small.ci[1]
    assert e_large.ci is not None and e_large.ci[1] - e_large.ci[0] < (e_small.ci[1] - e_small.ci[0]) / 2
    assert e_large.ci[0] < 5 < e_large.ci[1]


def test_estimate_skips_missing_values_and_handles_empty() -> None:
    e = estimate([1.0, None, 3.0])
    assert e.n == 2 and e.mean == 2.0
    assert estimate([]).mean is None and estimate([None]).n == 0
    assert estimate([4.0]).ci is None and estimate([4.0]).mean == 4.0  # one number has no interval


def test_compare_finds_a_real_gain_and_not_noise() -> None:
    rng = random.Random(3)
    base = [rng.gauss(0.3, 0.1) for _ in range(40)]
    gained = [b + 0.2 + rng.gauss(0, 0.05) for b in base]
    noisy = [b + rng.gauss(0, 0.1) for b in base]
    c = compare(base, gained, seed=0)
    assert c.significant and c.verdict == "better" and c.ci is not None and c.ci[0] > 0
    assert c.wins > 35
    n = compare(base, noisy, seed=0)
    assert not n.significant and n.verdict == "not significant"
    assert compare(gained, base, seed=0).verdict == "worse"


def test_compare_pairs_only_items_scored_for_both() -> None:
    c = compare([1.0, None, 2.0, 3.0], [2.0, 5.0, None, 4.0])
    assert c.n == 2 and c.diff == 1.0
    assert compare([None], [None]).verdict == "no data"
    with pytest.raises(ValueError):
        compare([1.0], [1.0, 2.0])


def test_permutation_p_is_exact_for_small_samples() -> None:
    # five equal positive differences: only the all-plus and all-minus sign patterns are as extreme: 2/32
    assert permutation_p(np.ones(5)) == pytest.approx(2 / 32)
    assert permutation_p(np.zeros(7)) == 1.0
    big = permutation_p(np.ones(40), n_perm=999, rng=np.random.default_rng(0))
    assert big == pytest.approx(1 / 1000)


def test_sign_test() -> None:
    assert sign_test_p(10, 0) == pytest.approx(2 / 1024)
    assert sign_test_p(5, 5) == 1.0
    assert sign_test_p(0, 0) == 1.0


def test_token_f1_and_rouge_l() -> None:
    assert token_f1("Port Anselm", "The capital is Port Anselm.") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert token_f1("the capital", "The Capital!") == 1.0
    assert token_f1("Grellby", "Port Anselm") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "x") == 0.0
    assert lcs_length(list("abcde"), list("ace")) == 3
    assert rouge_l("Port Anselm is the capital", "The capital is Port Anselm") == pytest.approx(2 / 4)
    assert rouge_l("a b c", "a b c") == 1.0


def test_small_n_interval_never_contradicts_the_sign_flip_test() -> None:
    rng = random.Random(11)
    checked = {"significant": 0, "not": 0}
    for trial in range(400):
        n = rng.randint(2, 14)
        base = [rng.choice([0.0, 0.25, 0.5, 1.0]) for _ in range(n)]
        shift = rng.choice([0.0, 0.2, 0.5])
        trained = [min(1.0, max(0.0, b + shift + rng.choice([-0.5, -0.25, 0.0, 0.25, 0.5]))) for b in base]
        clusters = [i // rng.randint(1, 3) for i in range(n)] if trial % 2 else None
        c = compare(base, trained, clusters=clusters, seed=trial, bounds=(-1.0, 1.0))
        assert c.p_value is not None and c.diff is not None
        if c.ci is None:  # one cluster: no interval at all
            assert c.clusters == 1 and c.p_value == 1.0
            continue
        lo, hi = c.ci
        assert lo <= c.diff + 1e-9 and c.diff - 1e-9 <= hi
        if c.p_value >= ALPHA:
            assert lo <= 0.0 <= hi, (base, trained, clusters, c)
            checked["not"] += 1
        else:
            assert not lo <= 0.0 <= hi, (base, trained, clusters, c)
            checked["significant"] += 1
    assert checked["significant"] > 20 and checked["not"] > 20


def test_no_interval_below_two_items_or_clusters() -> None:
    assert compare([0.0], [1.0]).ci is None and compare([0.0], [1.0]).n == 1
    one_cluster = estimate([0.1, 0.5, 0.9], clusters=["a", "a", "a"])
    assert one_cluster.ci is None and one_cluster.clusters == 1 and one_cluster.n == 3
    c = compare([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], bounds=(-1.0, 1.0))
    assert c.p_value == pytest.approx(0.25) and c.ci == (-1.0, 1.0)  # three items cannot bound it at 5%


def test_clusters_are_counted_and_flipped_together() -> None:
    base = [0.0] * 12
    trained = [1.0] * 12
    by_item = compare(base, trained)
    by_chunk = compare(base, trained, clusters=["a", "a", "a", "b", "b", "b", "c", "c", "c", "d", "d", "d"])
    assert by_item.clusters == 12 and by_item.p_value == pytest.approx(2 / 2 ** 12)
    assert by_chunk.clusters == 4 and by_chunk.p_value == pytest.approx(2 / 2 ** 4)  # 4 sources, not 12 facts
    e = estimate([0.0, 0.0, 1.0, 1.0, None], clusters=["a", "a", "b", "b", "b"])
    assert e.clusters == 2 and e.n == 4 and e.ci is not None and e.ci[0] <= 0.5 <= e.ci[1]


def test_holm_step_down() -> None:
    assert holm([0.01, 0.04, 0.03, None]) == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06), None]
    assert holm([0.5]) == [0.5] and holm([]) == []
    assert holm([0.2, 0.9]) == [pytest.approx(0.4), pytest.approx(0.9)]
