"""Benchmark and detection quality: ``detect_drift`` on the data of issue 6, point 9.

``rows`` reference and ``rows`` current rows of 20 numeric columns (standard normal, ``x0``
to ``x19``) and 5 categorical columns (``c0`` to ``c4`` with 10, 20, 30, 40 and 50 levels,
Zipf-ranked: level ``k`` has probability proportional to ``1 / k``). The current data shifts
6 columns: the means of ``x0``, ``x1``, ``x2`` by 0.1 standard deviation, the standard
deviation of ``x3`` by x1.10 and of ``x4`` by x1.25, and the mix of ``c2`` moved 15% toward
the reversed ranking (``0.85 p + 0.15 reversed(p)``).

Two sides, each run in a fresh process that generates the data (seed 0 unless given) and
prints one JSON line: seconds, peak resident memory (:func:`benchmarks.measure.peak_mb`,
which includes the generated data), the shifted columns found (of 6), the false alarms and
every drifted column. Only the comparison is timed, after scipy is imported.

* **headwater** (``python -m benchmarks.drift [headwater] ROWS [SEED]``):
  ``hw.detect_drift(reference, current)`` at the defaults on the Arrow tables.
* **baseline** (``python -m benchmarks.drift baseline ROWS [SEED]``): the same statistics
  and the same decision rule written as plain vectorized numpy, the way a person would
  without a library (it assumes no nulls, which this data has none of). Numeric columns:
  both sides sorted, their empirical CDFs read with ``searchsorted`` at every value of the
  merged order, the Kolmogorov-Smirnov statistic as their largest gap (p-value from
  ``scipy.special.kolmogorov``), the Wasserstein distance as the gaps times the widths,
  divided by the reference standard deviation. Categorical columns: one shared code per
  category (Arrow's ``dictionary_encode`` over both sides: numpy has no fast hashing of
  strings), counts by ``np.bincount``, Pearson's chi-squared (categories seen fewer than 5
  times pooled) and the Jensen-Shannon distance. Then Benjamini-Hochberg across the 25
  columns and the default thresholds of :mod:`headwater.monitoring.drift`.

The ``drift`` suite of ``python -m benchmarks`` (:func:`run`, :func:`table`) runs both
sides per size, alternating, and reports the median seconds, the largest peak memory, what
headwater found and whether both sides drifted the same columns.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.measure import child_report, peak_mb, text_table

NUMERIC = 20
LEVELS = (10, 20, 30, 40, 50)
SIDES = ("headwater", "baseline")
TARGET_S = 1.5  # issue 6, point 9: under 1.5 s at 1,000,000 rows
TARGET_ROWS = 1_000_000
SHIFTED = ("x0", "x1", "x2", "x3", "x4", "c2")
#: rows per side; tiny uses 20,000 rather than CI's usual few thousand so that the
#: 0.1 standard deviation shifts are detectable at all (and the test can require all 6)
SIZES = {"tiny": (20_000,), "small": (100_000,), "full": (100_000, 1_000_000)}


def generate(rows: int, seed: int) -> tuple[Any, Any]:
    """The reference and current Arrow tables (module docstring)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    sides = []
    for current in (False, True):
        columns: dict[str, Any] = {}
        for i in range(NUMERIC):
            values = rng.standard_normal(rows)
            if current and i < 3:
                values += 0.1
            elif current and i in (3, 4):
                values *= 1.10 if i == 3 else 1.25
            columns[f"x{i}"] = values
        for j, levels in enumerate(LEVELS):
            p = 1 / np.arange(1, levels + 1)
            p /= p.sum()
            if current and f"c{j}" in SHIFTED:
                p = 0.85 * p + 0.15 * p[::-1]
            codes = rng.choice(levels, size=rows, p=p).astype(np.int32)
            names = pa.array([f"level_{k:02d}" for k in range(levels)])
            columns[f"c{j}"] = pa.DictionaryArray.from_arrays(codes, names).dictionary_decode()
        sides.append(pa.table(columns))
    return sides[0], sides[1]


def run_headwater(reference: Any, current: Any) -> tuple[float, set[str]]:
    """Seconds and drifted columns of ``hw.detect_drift`` at the defaults."""
    import headwater as hw

    start = time.perf_counter()
    report = hw.detect_drift(reference, current)
    return time.perf_counter() - start, set(report.drifted_columns)


def run_baseline(reference: Any, current: Any) -> tuple[float, set[str]]:
    """Seconds and drifted columns of the plain numpy computation (module docstring)."""
    import numpy as np
    import pyarrow as pa
    from scipy.special import chdtrc, kolmogorov

    from headwater.monitoring.drift import DEFAULT_THRESHOLDS

    fdr = 0.01  # detect_drift's default
    start = time.perf_counter()
    names, p_values, sizes, limits = [], [], [], []
    for name in reference.column_names:
        if pa.types.is_floating(reference.schema.field(name).type):
            a = np.sort(reference.column(name).to_numpy())
            b = np.sort(current.column(name).to_numpy())
            n, m = len(a), len(b)
            merged = np.sort(np.concatenate([a, b]))
            gaps = np.abs(np.searchsorted(a, merged, side="right") / n
                          - np.searchsorted(b, merged, side="right") / m)
            ks = float(gaps.max())
            p_value = float(kolmogorov(np.sqrt(n * m / (n + m)) * ks))
            size = float(np.dot(np.diff(merged), gaps[:-1])) / float(a.std())
            limit = DEFAULT_THRESHOLDS["wasserstein"]
        else:
            both = pa.concat_arrays([*reference.column(name).chunks,
                                     *current.column(name).chunks]).dictionary_encode()
            codes = both.indices.to_numpy()
            levels, n = len(both.dictionary), reference.num_rows
            ref = np.bincount(codes[:n], minlength=levels)
            cur = np.bincount(codes[n:], minlength=levels)
            rare = ref + cur < 5
            table = np.vstack([np.append(ref[~rare], ref[rare].sum()),
                               np.append(cur[~rare], cur[rare].sum())]).astype(np.float64)
            table = table[:, table.sum(axis=0) > 0]
            expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
            chi2 = float(np.sum((table - expected) ** 2 / expected))
            p_value = float(chdtrc(table.shape[1] - 1, chi2))
            p, q = ref / ref.sum(), cur / cur.sum()
            mid = (p + q) / 2
            with np.errstate(divide="ignore", invalid="ignore"):
                kl_p = np.where(p > 0, p * np.log2(p / mid), 0.0).sum()
                kl_q = np.where(q > 0, q * np.log2(q / mid), 0.0).sum()
            size = float(np.sqrt(max(0.5 * (kl_p + kl_q), 0.0)))
            limit = DEFAULT_THRESHOLDS["jensen_shannon"]
        names.append(name)
        p_values.append(p_value)
        sizes.append(size)
        limits.append(limit)
    p_sorted = np.asarray(p_values)
    order = np.argsort(p_sorted)
    scaled = p_sorted[order] * len(order) / np.arange(1, len(order) + 1)
    adjusted = np.empty(len(order))
    adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    drifted = {name for name, p_adj, size, limit in zip(names, adjusted, sizes, limits,
                                                         strict=True)
               if p_adj <= fdr and size >= limit}
    return time.perf_counter() - start, drifted


@dataclass(frozen=True)
class Result:
    """Both sides at one size."""

    rows: int
    headwater_s: float
    baseline_s: float
    headwater_mb: float
    baseline_mb: float
    found: int
    false_alarms: tuple[str, ...]
    same_decisions: bool

    @property
    def ratio(self) -> float:
        return self.headwater_s / self.baseline_s if self.baseline_s > 0 else float("inf")


def measure(side: str, rows: int, seed: int) -> dict[str, Any]:
    """Run one side in a fresh process and return what it reported."""
    return child_report("drift", side, rows, seed)


def run(sizes: tuple[int, ...], repeat: int = 1, seed: int = 0) -> list[Result]:
    """Both sides at every size, ``repeat`` times each, alternating."""
    results = []
    for rows in sizes:
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for _ in range(repeat):
            for side in SIDES:  # alternate, so drift in the machine hits both alike
                runs[side].append(measure(side, rows, seed))
        hw, base = runs["headwater"], runs["baseline"]
        results.append(Result(
            rows=rows,
            headwater_s=statistics.median(r["seconds"] for r in hw),
            baseline_s=statistics.median(r["seconds"] for r in base),
            headwater_mb=max(r["peak_mb"] for r in hw),
            baseline_mb=max(r["peak_mb"] for r in base),
            found=int(hw[0]["found"]), false_alarms=tuple(hw[0]["false_alarms"]),
            same_decisions=all(r["drifted"] == base[0]["drifted"] for r in hw + base),
        ))
    return results


def table(results: list[Result]) -> str:
    """The results as a fixed-width text table."""
    header = ("rows", "headwater s", "baseline s", "ratio", "target", "headwater peak MB",
              "baseline peak MB", "found", "false alarms", "same decisions")
    lines = [[f"{r.rows:,}", f"{r.headwater_s:.2f}", f"{r.baseline_s:.2f}", f"{r.ratio:.2f}x",
              f"< {TARGET_S} s" if r.rows == TARGET_ROWS else "-", f"{r.headwater_mb:,.0f}",
              f"{r.baseline_mb:,.0f}", f"{r.found}/{len(SHIFTED)}",
              ", ".join(r.false_alarms) or "0", "yes" if r.same_decisions else "NO"]
             for r in results]
    return text_table(header, lines)


def main(argv: list[str]) -> None:
    """``[headwater|baseline] ROWS [SEED]`` -> one JSON line (module docstring)."""
    import scipy.special  # imported before the clock starts
    import scipy.stats  # noqa: F401

    side = argv.pop(0) if argv and argv[0] in SIDES else "headwater"
    rows, seed = int(argv[0]), int(argv[1]) if len(argv) > 1 else 0
    reference, current = generate(rows, seed)
    seconds, drifted = (run_headwater if side == "headwater" else run_baseline)(
        reference, current)
    print(json.dumps({"side": side, "rows": rows, "seed": seed, "seconds": seconds,
                      "peak_mb": peak_mb(), "found": len(drifted & set(SHIFTED)),
                      "false_alarms": sorted(drifted - set(SHIFTED)),
                      "drifted": sorted(drifted)}))


if __name__ == "__main__":
    main(sys.argv[1:])
