"""What the kernel says about a server: CPU seconds, peak and current RSS, PSS (Linux /proc).

A server may be several processes (nginx's workers, the cache's server processes and fetcher):
memory figures are summed over the process and its children. A sum of RSS counts the pages
they share (forked code, libraries) once per process, so it is an upper bound; PSS divides
each shared page among its sharers, so it adds up to what the server costs the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU of ``pid`` (and, with ``children``, of its live child processes)."""
    total = _own_cpu(pid)
    if children:
        total += sum(_own_cpu(child) for child in child_pids(pid))
    return total


def _own_cpu(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def child_pids(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += child_pids(current)
    return found


def _kib_field(path: str, key: str) -> int:
    try:
        lines = Path(path).read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return 0  # the process ended between listing and reading
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (``VmHWM``, ``VmRSS``), summed over the tree
    (for ``VmHWM``: the sum of each process's own peak, an upper bound of the tree's peak)."""
    return sum(_kib_field(f"/proc/{p}/status", key) for p in tree(pid))


def pss_kib(pid: int) -> int:
    """Proportional set size of the tree: shared pages split among their sharers."""
    return sum(_kib_field(f"/proc/{p}/smaps_rollup", "Pss") for p in tree(pid))


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > clear_refs``) in the whole tree; False if
    not permitted."""
    try:
        for p in tree(pid):
            Path(f"/proc/{p}/clear_refs").write_text("5")
        return True
    except OSError:
        return False
