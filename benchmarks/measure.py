"""What every benchmark child process reports about itself."""

from __future__ import annotations

import resource


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
