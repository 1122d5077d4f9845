"""The load generator for timed transfers, in a process of its own (aiohttp on uvloop).

``python -m benchmarks.load`` reads one JSON spec on stdin and writes one JSON result:

- ``{"mode": "once", "requests": [{"url", "headers"}...], "ca": PATH}``: every request at
  once, one connection each; per request status, headers/first-byte/total seconds, bytes,
  X-Cache; and ``wall_s``, until the last one finished.
- ``{"mode": "sequence", ...}``: the same requests one after another on one kept-alive
  connection (latency).
- ``{"mode": "window", "url", "concurrency", "duration", "ca"}``: bytes received in a fixed
  time by ``concurrency`` clients looping on ``url`` (throughput, when wrk is not installed).

Bodies are read and dropped (1 MiB reads); nothing is hashed, so the client costs the same CPU
whichever server it measures.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

READ = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parent.parent


async def _one(session: Any, url: str, headers: dict[str, str]) -> dict[str, Any]:
    began = time.monotonic()
    first: float | None = None
    got = 0
    try:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            head = time.monotonic() - began
            while chunk := await response.content.read(READ):
                if first is None:
                    first = time.monotonic() - began
                got += len(chunk)
            return {"status": response.status, "headers_s": head,
                    "ttfb_s": first if first is not None else head,
                    "total_s": time.monotonic() - began, "bytes": got,
                    "x_cache": response.headers.get("X-Cache", "")}
    except Exception as exc:  # reported, not raised: one failure must not hide the others
        return {"status": 0, "error": f"{type(exc).__name__}: {exc}"[:300], "bytes": got,
                "total_s": time.monotonic() - began}


async def _window(session: Any, url: str, concurrency: int, duration: float) -> dict[str, Any]:
    got, done = 0, 0
    began = time.monotonic()
    stop = began + duration

    async def client() -> None:
        nonlocal got, done
        while time.monotonic() < stop:
            async with session.get(url) as response:
                while chunk := await response.content.read(READ):
                    got += len(chunk)
                    if time.monotonic() >= stop:
                        return
                done += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.monotonic() - began
    return {"bytes": got, "requests": done, "seconds": seconds}


async def _main(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    context = ssl.create_default_context(cafile=spec["ca"])
    requests = spec.get("requests", [])
    limit = 1 if spec["mode"] == "sequence" else 0
    connector = aiohttp.TCPConnector(ssl=context, limit=limit, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     auto_decompress=False, read_bufsize=READ) as session:
        began = time.monotonic()
        if spec["mode"] == "window":
            return await _window(session, spec["url"], spec["concurrency"], spec["duration"])
        if spec["mode"] == "sequence":
            results = [await _one(session, r["url"], r.get("headers", {})) for r in requests]
        else:
            results = await asyncio.gather(*(_one(session, r["url"], r.get("headers", {}))
                                             for r in requests))
        return {"results": list(results), "wall_s": time.monotonic() - began}


def main() -> None:
    import uvloop

    spec = json.loads(sys.stdin.read())
    print(json.dumps(uvloop.run(_main(spec))))


class Load:
    """One load generator process: ``start`` it, poll ``running``, then ``result()``."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Load:
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.load"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(self.spec))
        self.process.stdin.close()
        self.process.stdin = None  # communicate() must not flush it again
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def result(self, timeout: float = 600) -> dict[str, Any]:
        assert self.process is not None
        try:
            out, err = self.process.communicate(timeout=timeout)
        finally:
            self.stop()
        if self.process.returncode != 0:
            raise RuntimeError(f"load generator failed ({self.process.returncode}): {err[-2000:]}")
        return json.loads(out)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def run(spec: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run one spec to its end; the process is killed if it overruns ``timeout``."""
    return Load(spec).start().result(timeout)


if __name__ == "__main__":
    main()
