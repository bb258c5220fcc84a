"""The statistics equal scipy's on small data, ties and unequal sizes included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, false_discovery_control, ks_2samp, wasserstein_distance

from headwater.monitoring import statistics as st


@pytest.mark.parametrize(("n", "m", "ties"), [(40, 40, False), (50, 73, True), (300, 200, True),
                                              (1, 5, False)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_and_wasserstein_equal_scipy(n: int, m: int, ties: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    b = rng.standard_normal(m) * 1.3 + 0.2
    if ties:  # rounded values tie within and across the samples; -0.0 ties with 0.0
        a, b = np.round(a, 1), np.round(b, 1)
        a[0], b[0] = -0.0, 0.0
    order = st.merged_order(a, b)
    d = st.ks_statistic(order)
    expected = ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert st.ks_p_value(d, n, m) == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)
    assert st.wasserstein(order) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)


def test_integer_input_is_read_as_float() -> None:
    a = np.array([3, 1, 2, 2, 5], dtype=np.int64)
    b = np.array([2, 2, 4], dtype=np.int32)
    order = st.merged_order(a, b)
    assert st.ks_statistic(order) == pytest.approx(ks_2samp(a, b).statistic)
    assert st.wasserstein(order) == pytest.approx(wasserstein_distance(a, b))


def test_chi_squared_equals_scipy_without_rare_categories() -> None:
    ref = np.array([120, 80, 40, 10], dtype=np.int64)
    cur = np.array([100, 95, 30, 25], dtype=np.int64)
    statistic, p_value = st.chi_squared(ref, cur)
    expected = chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)


def test_chi_squared_pools_rare_categories() -> None:
    ref = np.array([120, 80, 1, 2, 0], dtype=np.int64)
    cur = np.array([100, 95, 0, 1, 1], dtype=np.int64)
    pooled = np.array([[120, 80, 3], [100, 95, 2]])
    assert st.chi_squared(ref, cur)[0] == pytest.approx(
        chi2_contingency(pooled, correction=False).statistic)
    assert st.chi_squared(np.array([5]), np.array([7])) == (0.0, 1.0)  # one category


def test_jensen_shannon_and_psi() -> None:
    ref = np.array([50, 30, 20, 0], dtype=np.int64)
    cur = np.array([40, 30, 20, 10], dtype=np.int64)
    p, q = ref / ref.sum(), cur / cur.sum()
    assert st.jensen_shannon(ref, cur) == pytest.approx(jensenshannon(p, q, base=2))
    assert st.jensen_shannon(ref, ref) == 0.0
    floored_p, floored_q = np.maximum(p, st.PSI_FLOOR), np.maximum(q, st.PSI_FLOOR)
    assert st.psi(ref, cur) == pytest.approx(
        np.sum((floored_q - floored_p) * np.log(floored_q / floored_p)))


def test_quantile_bins_hold_every_value() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.standard_normal(1000), rng.standard_normal(700) + 5
    counts_ref, counts_cur = st.quantile_bin_counts(ref, cur, 10)
    assert counts_ref.tolist() == [100] * 10  # deciles of the reference
    assert counts_cur.sum() == 700 and counts_cur[-1] > 650


def test_benjamini_hochberg_equals_scipy() -> None:
    p = np.array([0.001, 0.2, 0.03, 0.04, 0.5, 1e-9, 0.011])
    assert st.benjamini_hochberg(p) == pytest.approx(false_discovery_control(p))


@pytest.mark.parametrize(("n", "m", "shift"), [(20_001, 20_001, 0.0), (30_000, 25_000, 0.01),
                                               (60_000, 60_000, 0.02), (40_000, 50_000, 0.03)])
def test_ks_p_value_above_the_limit_is_close_to_scipy(n: int, m: int, shift: float) -> None:
    # above KS_LIMIT_N the limiting Kolmogorov distribution stands in for scipy's kstwo
    assert n * m / (n + m) > st.KS_LIMIT_N
    rng = np.random.default_rng(n + m)
    a, b = rng.standard_normal(n), rng.standard_normal(m) + shift
    d = st.ks_statistic(st.merged_order(a, b))
    expected = ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert st.ks_p_value(d, n, m) == pytest.approx(expected.pvalue, rel=0.035, abs=1e-12)


@pytest.mark.parametrize("effective", [10_001, 50_000, 500_000])
def test_ks_p_value_limit_error_over_the_p_value_range(effective: int) -> None:
    from scipy.stats import kstwo

    # documented bound (ks_p_value): 3.3% of the p-value at 10,000, shrinking as 1/sqrt(n)
    bound = 0.034 * np.sqrt(10_000 / effective)
    for z in np.linspace(0.3, 3.5, 17):  # p from 1 down to about 1e-10
        d = z / np.sqrt(effective)
        expected = float(kstwo.sf(d, effective))
        got = st.ks_p_value(d, 2 * effective, 2 * effective)  # effective size n*m/(n+m)
        assert got == pytest.approx(expected, rel=bound)
