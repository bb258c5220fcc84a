"""The two-sample statistics behind drift detection, as plain numpy over one column.

Numeric columns go through :func:`merged_order` once: both samples (nulls already removed)
are written into one float64 buffer whose lowest mantissa bit records the side (0 for
reference, 1 for current) and sorted once, so the Kolmogorov-Smirnov statistic and the
Wasserstein distance both come from one pass over the merged order (no per-row Python, no
second sort, no ``searchsorted``). The cost of the side bit: values that differ only in that
last bit (one unit in the last place) count as tied; any other value is compared exactly, and
the statistics equal scipy's (tests/monitoring/test_statistics.py). ``-0.0`` is read as
``0.0``.

Categorical columns arrive as two count vectors over one list of categories.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Counts = npt.NDArray[np.int64]

_LOW_BIT = np.uint64(1)
#: categories seen fewer times than this in both samples together share one bucket in the
#: chi-squared test (its approximation needs expected counts of about 5 or more)
RARE_COUNT = 5
#: proportions are floored at this before PSI takes their logarithm (an empty bin would give
#: an infinite PSI)
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class MergedOrder:
    """Both samples sorted together: ``values`` (ascending) and, at each position, the
    scaled gap between the two empirical CDFs, ``n * m * (F_ref - F_cur)`` (exact
    integers); ``ends`` marks the last position of each run of tied values (``None``
    when there are no ties)."""

    values: Floats
    scaled_gap: npt.NDArray[np.int64]
    ends: npt.NDArray[np.bool_] | None
    n: int
    m: int


def merged_order(reference: npt.NDArray[np.generic], current: npt.NDArray[np.generic]
                 ) -> MergedOrder:
    """Sort both samples together (module docstring); neither may hold NaN or nulls."""
    n, m = len(reference), len(current)
    buffer = np.empty(n + m, dtype=np.float64)
    np.add(reference, 0.0, out=buffer[:n], casting="unsafe")  # + 0.0 turns -0.0 into 0.0
    np.add(current, 0.0, out=buffer[n:], casting="unsafe")
    bits = buffer.view(np.uint64)
    bits[:n] &= ~_LOW_BIT
    bits[n:] |= _LOW_BIT
    buffer.sort()
    from_current = (bits & _LOW_BIT).view(np.int64)
    count_current = np.cumsum(from_current)
    # n*m*(F_ref - F_cur) after position i = m*(i + 1 - c_i) - n*c_i = m*(i + 1) - (n+m)*c_i
    scaled = np.arange(m, m * (n + m) + 1, m, dtype=np.int64)
    scaled -= (n + m) * count_current
    bits &= ~_LOW_BIT  # the values without the side bit, so ties look tied again
    ends: npt.NDArray[np.bool_] | None = None
    tied = buffer[1:] == buffer[:-1]
    if tied.any():
        ends = np.empty(n + m, dtype=np.bool_)
        np.logical_not(tied, out=ends[:-1])
        ends[-1] = True
    return MergedOrder(buffer, scaled, ends, n, m)


def ks_statistic(order: MergedOrder) -> float:
    """The two-sided Kolmogorov-Smirnov statistic ``sup |F_ref - F_cur|``."""
    gaps = order.scaled_gap if order.ends is None else order.scaled_gap[order.ends]
    return float(max(gaps.max(), -gaps.min())) / (order.n * order.m)


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """The asymptotic two-sided p-value, as ``scipy.stats.ks_2samp(method="asymp")``."""
    from scipy.stats import kstwo

    effective = round(n * m / (n + m))
    return float(np.clip(kstwo.sf(statistic, effective), 0.0, 1.0))


def wasserstein(order: MergedOrder) -> float:
    """The first Wasserstein distance ``integral |F_ref - F_cur| dx`` (scipy's
    ``wasserstein_distance``). Tied positions add nothing: their gaps are zero."""
    widths = np.diff(order.values)
    heights = np.abs(order.scaled_gap[:-1]).astype(np.float64)  # BLAS dot wants one dtype
    return float(np.dot(widths, heights)) / (order.n * order.m)


def quantile_bin_counts(reference: npt.NDArray[np.generic], current: npt.NDArray[np.generic],
                        bins: int) -> tuple[Counts, Counts]:
    """Counts of both samples in ``bins`` bins cut at the reference quantiles (open at both
    ends, so every value falls in one); equal quantiles merge their bins."""
    cuts = np.linspace(0, 1, bins + 1)[1:-1]
    inner = np.unique(np.quantile(reference.astype(np.float64, copy=False), cuts))
    size = len(inner) + 1
    ref = np.bincount(np.searchsorted(inner, reference, side="right"), minlength=size)
    cur = np.bincount(np.searchsorted(inner, current, side="right"), minlength=size)
    return ref.astype(np.int64), cur.astype(np.int64)


def psi(reference: Counts, current: Counts) -> float:
    """Population stability index ``sum (q - p) ln(q / p)`` of the two count vectors, with
    proportions floored at :data:`PSI_FLOOR`."""
    p = np.maximum(reference / reference.sum(), PSI_FLOOR)
    q = np.maximum(current / current.sum(), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference: Counts, current: Counts) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2, so within [0, 1]),
    as ``scipy.spatial.distance.jensenshannon(p, q, base=2)``."""
    p = reference / reference.sum()
    q = current / current.sum()
    middle = (p + q) / 2
    divergence = 0.5 * (_kl(p, middle) + _kl(q, middle))
    return float(np.sqrt(max(divergence, 0.0)))


def _kl(p: Floats, q: Floats) -> float:
    present = p > 0
    return float(np.sum(p[present] * np.log2(p[present] / q[present])))


def chi_squared(reference: Counts, current: Counts) -> tuple[float, float]:
    """Pearson's chi-squared test of homogeneity on the 2 x k table of counts (no continuity
    correction), with categories rarer than :data:`RARE_COUNT` pooled: the statistic and its
    p-value, as ``scipy.stats.chi2_contingency(table, correction=False)``."""
    from scipy.special import chdtrc

    total = reference + current
    rare = total < RARE_COUNT
    if rare.any():
        reference = np.append(reference[~rare], reference[rare].sum())
        current = np.append(current[~rare], current[rare].sum())
        total = reference + current
    keep = total > 0
    table = np.vstack([reference[keep], current[keep]]).astype(np.float64)
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, float(chdtrc(table.shape[1] - 1, statistic))


def benjamini_hochberg(p_values: Floats) -> Floats:
    """Benjamini-Hochberg adjusted p-values: a column is a discovery at false discovery
    rate ``q`` when its adjusted p-value is at most ``q``."""
    count = len(p_values)
    if count == 0:
        return p_values
    order = np.argsort(p_values)
    scaled = p_values[order] * count / np.arange(1, count + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(count, dtype=np.float64)
    out[order] = np.minimum(adjusted, 1.0)
    return out
