"""Throughput over a fixed time with wrk (C, no Lua script): lighter than any Python client.

wrk counts every byte it reads, partial responses included, so a 512 MiB blob still gives a
rate in a few seconds. Without wrk, the Python window client in ``load`` is used instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_RATE = re.compile(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)")
_REQUESTS = re.compile(r"Requests/sec:\s+([\d.]+)")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True)
class Window:
    bytes_per_s: float
    requests_per_s: float
    errors: int
    tool: str


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].split(" [")[0] if available() else ""


def run(url: str, connections: int, duration: int) -> Window:
    """``connections`` keep-alive clients on one wrk thread (the client gets one core)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "600s", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60,
                          check=False)
    rate, requests = _RATE.search(done.stdout), _REQUESTS.search(done.stdout)
    if done.returncode != 0 or rate is None or requests is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]}"
                           f"{done.stderr[-500:]}")
    errors = sum(int(n) for n in (_ERRORS.search(done.stdout) or _NONE).groups())
    non_2xx = _NON_2XX.search(done.stdout)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return Window(float(rate.group(1)) * _UNITS[rate.group(2)], float(requests.group(1)),
                  errors, "wrk")


class _NoMatch:
    @staticmethod
    def groups() -> tuple[str, ...]:
        return ()


_NONE = _NoMatch()
