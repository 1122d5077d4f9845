"""A description of the machine and the software measured, and how busy the machine was."""

from __future__ import annotations

import os
import platform
import resource
import socket
import ssl
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import wrk
from .nginx import nginx_version


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def _registry_version() -> str:
    done = subprocess.run(["/usr/bin/docker-registry", "--version"], capture_output=True,
                          text=True, check=False)
    return done.stdout.strip().split()[-1] if done.stdout.strip() else "unknown"


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "memory_gib": round(_mem_total_gib(), 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "aiohttp": _package("aiohttp"), "uvloop": _package("uvloop"),
        "openssl": ssl.OPENSSL_VERSION, "nginx": nginx_version(),
        "distribution": _registry_version(),
        "client": wrk.version() if wrk.available() else "python aiohttp (wrk not installed)",
    }


def tls_session(url: str, context: ssl.SSLContext) -> str:
    """``TLSv1.3 TLS_AES_256_GCM_SHA384`` as negotiated with ``url`` by a default client."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls:
        cipher = tls.cipher()
        return f"{tls.version()} {cipher[0] if cipher else '?'}"


class Busy:
    """CPU the whole machine spent between ``start`` and ``stop``, ours and everyone else's.

    Ours is this process and every child it waited for (servers, their workers, load
    generators): call ``stop`` after everything started has been stopped.
    """

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.machine, self.softirq = _busy_seconds()
        self.ours = _our_seconds()
        self.load_start = os.getloadavg()

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.began
        machine, softirq = _busy_seconds()
        machine, softirq = machine - self.machine, softirq - self.softirq
        ours = _our_seconds() - self.ours
        cores = os.cpu_count() or 1
        return {"wall_s": round(wall, 1), "machine_cpu_s": round(machine, 1),
                "our_cpu_s": round(ours, 1), "other_cpu_s": round(max(0.0, machine - ours), 1),
                "softirq_cpu_s": round(softirq, 1),
                "other_share": round(max(0.0, machine - ours) / (wall * cores), 3),
                "loadavg_start": self.load_start, "loadavg_end": os.getloadavg()}


def _busy_seconds() -> tuple[float, float]:
    """(process CPU of the whole machine, interrupt CPU) in seconds since boot.

    Interrupt time (loopback TCP runs in softirq) is charged to no process: kept apart.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + steal) / tick, (irq + softirq) / tick


def _our_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total
