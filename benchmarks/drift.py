"""Benchmark and detection quality: ``detect_drift`` on the data of issue 6, point 9.

``rows`` reference and ``rows`` current rows of 20 numeric columns (standard normal, ``x0``
to ``x19``) and 5 categorical columns (``c0`` to ``c4`` with 10, 20, 30, 40 and 50 levels,
Zipf-ranked: level ``k`` has probability proportional to ``1 / k``). The current data shifts
6 columns: the means of ``x0``, ``x1``, ``x2`` by 0.1 standard deviation, the standard
deviation of ``x3`` by x1.10 and of ``x4`` by x1.25, and the mix of ``c2`` moved 15% toward
the reversed ranking (``0.85 p + 0.15 reversed(p)``).

``python -m benchmarks.drift ROWS [SEED]`` generates the data, times
``hw.detect_drift(reference, current)`` at the defaults on the Arrow tables (after scipy is
imported) and prints one JSON line: seconds, peak resident memory
(:func:`benchmarks.measure.peak_mb`, which includes the generated data), the shifted columns
found (of 6) and the false alarms.

Not yet done (issue 6, point 9): the ``drift`` suite in ``benchmarks/__main__.py`` with a
fresh process per run and the plain numpy baseline beside it, and its tiny-size test.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from benchmarks.measure import peak_mb

NUMERIC = 20
LEVELS = (10, 20, 30, 40, 50)
SHIFTED = ("x0", "x1", "x2", "x3", "x4", "c2")
SIZES = {"tiny": (2_000,), "small": (100_000,), "full": (100_000, 1_000_000)}


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


def main(argv: list[str]) -> None:
    """``ROWS [SEED]`` -> one JSON line (module docstring)."""
    import scipy.stats  # noqa: F401  (imported before the clock starts)

    import headwater as hw

    rows, seed = int(argv[0]), int(argv[1]) if len(argv) > 1 else 0
    reference, current = generate(rows, seed)
    start = time.perf_counter()
    report = hw.detect_drift(reference, current)
    seconds = time.perf_counter() - start
    drifted = set(report.drifted_columns)
    print(json.dumps({"rows": rows, "seed": seed, "seconds": seconds, "peak_mb": peak_mb(),
                      "found": len(drifted & set(SHIFTED)),
                      "false_alarms": sorted(drifted - set(SHIFTED))}))


if __name__ == "__main__":
    main(sys.argv[1:])
