"""Means with bootstrap intervals, paired tests, judge-free metrics."""

from __future__ import annotations

import random

import numpy as np
import pytest

from graftlm.evaluate.metrics import lcs_length, rouge_l, token_f1
from graftlm.evaluate.stats import compare, estimate, permutation_p, sign_test_p


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
    assert estimate([4.0]).ci == (4.0, 4.0)


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
