"""What every benchmark child process reports about itself."""

from __future__ import annotations

import resource
from collections.abc import Sequence


def peak_mb() -> float:
    """This process's peak resident memory in MB.

    ``VmHWM`` where there is one: ``ru_maxrss`` survives ``exec``, and ``subprocess`` starts
    children with ``vfork``, so a child's ``ru_maxrss`` is at least its parent's peak (here
    the parent that generated the data)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``rows`` under ``header`` as a fixed-width text table: columns padded to their widest
    cell, two spaces apart, a dashed line under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
               for row in rows)
    return "\n".join(out)
