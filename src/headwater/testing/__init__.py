"""Public helpers for tests, demos and benchmarks: data generators and conformance suites.

Nothing here is imported by ``import headwater``; import the module you need, e.g.
``from headwater.testing.data import driver_stats``.
"""

from __future__ import annotations
