"""sum adds float32 columns in float64, as the offline engine (DuckDB) does."""

from __future__ import annotations

import numpy as np
import pytest

from headwater.aggregation.base import FUNCTIONS


def test_float32_sums_add_in_float64_as_offline_does() -> None:
    values = np.full(100_000, 0.1, dtype=np.float32)
    exact = float(np.sum(values.astype(np.float64)))
    assert float(np.sum(values)) != exact  # float32 accumulation would differ
    assert FUNCTIONS["sum"].update(0, values) == exact
    grouped = FUNCTIONS["sum"].update_grouped(values, None, np.array([0, 50_000]))
    assert sum(grouped) == pytest.approx(exact, rel=1e-12)


def test_a_mean_merged_from_tiles_is_the_sum_over_the_count_as_offline() -> None:
    mean = FUNCTIONS["mean"]
    parts = [mean.update(mean.init(), np.array([v])) for v in (1, 10**12, -(10**12))]
    merged = mean.merge(mean.merge(parts[0], parts[1]), parts[2])
    assert mean.finalize(mean.decode(mean.encode(merged))) == 1 / 3  # Welford gives 0.33337
