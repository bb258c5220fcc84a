"""The benchmarks run (at the tiny size, as in CI) and both sides do the same work."""

from __future__ import annotations

from pathlib import Path

from benchmarks.__main__ import run, table
from benchmarks.historical import SIZES, VARIANTS


def test_tiny_benchmark_table(tmp_path: Path) -> None:
    size = SIZES["tiny"]
    results = run(size, repeat=1, workdir=tmp_path)
    assert [r.operation for r in results] == [
        f"get_historical_features, {label}" for label in VARIANTS.values()]
    for result in results:
        assert result.rows == result.baseline_rows == size.entity_rows
        assert result.headwater_s > 0 and result.baseline_s > 0
        assert result.headwater_mb > 0 and result.baseline_mb > 0
    text = table(results).splitlines()
    assert text[0].split("  ")[0] == "operation"
    assert "ratio" in text[0] and "headwater peak MB" in text[0]
    assert len(text) == 2 + len(results)  # header, rule, one line per operation
    assert list(tmp_path.iterdir()) == []  # the generated data is cleaned up
