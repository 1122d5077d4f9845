"""``--profile``: where the cache's event-loop thread spends its time, by py-spy (native).

Samples the signed-token cache (all its processes) during a hit run (wrk, 8 clients) and a
cold miss (one client), keeps py-spy's raw stacks next to the report and summarizes each: the
share of main-thread samples by what was running (a syscall, OpenSSL, libc copies, Python) and under
which Python frame.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from . import load, wrk
from .blobs import Blob
from .servers import Lab

_SYSCALLS = ("read", "write", "pread64", "epoll_pwait", "sendmsg", "recvmsg", "futex")
# A frame of the thread that runs the cache's event loop (the cache runs its loop with
# asyncio.run in server.serve_on; aiohttp's run_app was its way before the processes).
_LOOP_FRAMES = ("serve_on ", "run_app ")
_DSO = re.compile(r"\((\S+?\.so)[.\d]*\)")


def available() -> bool:
    return shutil.which("py-spy") is not None and wrk.available()


def _record(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["py-spy", "record", "-p", str(pid), "-d", str(seconds), "-r", "250",
                             "--native", "--subprocesses", "-f", "raw", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(raw: Path, top: int = 12) -> dict[str, Any]:
    kinds: collections.Counter[str] = collections.Counter()
    where: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(f.startswith(_LOOP_FRAMES) for f in frames):
            continue  # the event loop's thread only (the executor's threads mostly wait)
        n = int(count)
        total += n
        leaf = frames[-1]
        name = leaf.split(" ")[0]
        dso = _DSO.search(leaf)
        kind = (f"syscall {name}" if name in _SYSCALLS else
                dso.group(1) if dso else "Python")
        python = [f.split(" (")[0] for f in frames if ".py:" in f]
        kinds[kind] += n
        where[f"{kind} in {python[-1] if python else '?'}"] += n
    share = {k: round(v / total, 3) for k, v in kinds.most_common(top)} if total else {}
    detail = {k: round(v / total, 3) for k, v in where.most_common(top)} if total else {}
    return {"samples": total, "by_kind": share, "by_frame": detail}


def profile(lab: Lab, blob: Blob, out: Path, log: Any) -> dict[str, Any]:
    cache = lab["cache-token"]
    out.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {}
    url = lab.token_url(blob)
    lab.drop_cached(cache, blob)
    spy = _record(cache.process.pid, out / "cache-miss.raw.txt", 4)
    time.sleep(1.0)  # py-spy attaches
    load.run({"mode": "once", "ca": str(lab.ca_file), "requests": [{"url": url}]})
    spy.wait(30)
    spy = _record(cache.process.pid, out / "cache-hit.raw.txt", 4)
    time.sleep(1.0)
    wrk.run(url, 8, 4)
    spy.wait(30)
    for name in ("miss", "hit"):
        raw = out / f"cache-{name}.raw.txt"
        found[name] = summarize(raw) if raw.exists() else {"samples": 0}
        log(f"profile {name}: {found[name].get('by_kind')}")
    return found
