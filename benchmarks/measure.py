"""What every benchmark child process reports about itself."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


CPU_CHECK_ADDITIONS = 10_000_000


def cpu_check_s() -> float:
    """Seconds one core takes for a Python loop of :data:`CPU_CHECK_ADDITIONS` additions:
    the speed of this machine now, printed beside the figures. On the machines this project
    was measured on it varied about 2x between sessions and within one (0.44 s to 0.73 s in
    one session, 0.36 s to 0.47 s on the next day's machine), so two tables compare only next
    to this figure."""
    began = time.perf_counter()
    total = 0
    for i in range(CPU_CHECK_ADDITIONS):
        total += i
    return time.perf_counter() - began


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


# Pins the process to the CPU in argv[1] before it imports anything (so before any thread
# starts: every thread it starts inherits the pin), then runs module argv[2] as __main__.
_PINNED = ("import os, runpy, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); "
           "sys.argv = sys.argv[2:]; runpy.run_module(sys.argv[0], run_name='__main__', "
           "alter_sys=True)")


def one_cpu() -> int | None:
    """The CPU a benchmark that claims "one core" pins its child to: the highest one this
    process may run on; None where CPU affinity cannot be set (not Linux)."""
    return max(cpus(), default=None)


def cpus() -> list[int]:
    """The CPUs this process may run on, ascending (empty where that cannot be known)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def child_report(module: str, *args: object, cpu: int | None = None) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> ARGS...`` in a fresh process (from the project
    folder) and return the JSON object it printed on its last line. With ``cpu`` the
    process and every thread it starts run on that CPU only."""
    command = ([sys.executable, "-m", f"benchmarks.{module}"] if cpu is None else
               [sys.executable, "-c", _PINNED, str(cpu), f"benchmarks.{module}"])
    done = subprocess.run([*command, *map(str, args)], check=True, capture_output=True,
                          text=True, cwd=ROOT)
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def descendants_peak_mb(name: str | None = None) -> float | None:
    """The summed peak resident memory (``VmHWM``) in MB of this process's living
    descendants, only those whose command name is ``name`` when given (``"java"``: the JVM
    PySpark starts); None when there is none. Read it before the children exit."""
    total, seen = 0.0, False
    for pid in _descendants():
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if name is not None and comm != name:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
                    seen = True
        except OSError:
            continue
    return total if seen else None


def cpu_s(name: str | None = None) -> float:
    """CPU seconds (user + system) used so far by this process and its living descendants,
    only descendants whose command name is ``name`` when given (``"java"``). On a loaded
    machine this grows far less than wall time, so it is the better basis for sizing."""
    import os

    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _descendants():
        try:
            if name is not None and Path(f"/proc/{pid}/comm").read_text().strip() != name:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def process_tree(root: int) -> set[int]:
    """``root`` and its living descendants, from ``/proc``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    family, grew = {root}, True
    while grew:
        found = {pid for pid, ppid in parents.items() if ppid in family} - family
        family |= found
        grew = bool(found)
    return family


def _descendants() -> set[int]:
    """The ids of this process's living descendants."""
    import os

    return process_tree(os.getpid()) - {os.getpid()}
