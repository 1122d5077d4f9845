"""Several processes on one port: server processes take the clients, one fetcher fetches.

One Python process is one event loop on one core: TLS, hashing and file I/O all queue behind
each other. So, like nginx's workers, the cache forks server processes that share one
listening socket; each serves hits on its own (the local copy, a locally verified token). Every
upstream fetch happens in one more process, the fetcher (the parent), which the servers reach
over a private Unix socket (``cache_under_test.forward``): single flight and the TTL sweep stay
in one place, and a miss's download and its delivery to the client run on two cores.

Supervision is crash-only: if a server process dies, the fetcher logs ``process.exited`` and
stops the whole cache with a non-zero status, for the orchestrator (swarm, Docker's restart
policy) to restart it; if the fetcher dies, the servers see their lifeline pipe close and exit.

The processes share a private directory (``dtrcache-XXXXXXXX`` in the temp directory: the
fetcher's socket, the metrics files, what the run verified), whose ``owner`` file names the
fetcher (pid and start time). A start removes the directories whose fetcher is gone (left by a
``kill -9`` of every process), logged as ``processes.cleaned``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

from .config import CacheConfig
from .events import emit, emit_exception, set_process_label
from .multiproc import METRICS_ENV

PROCESSES_ENV = "DTRCACHE_PROCESSES"
PRIVATE_PREFIX = "dtrcache-"
PRIVATE_NAME = re.compile(r"dtrcache-[a-z0-9_]{8}")  # mkdtemp's: not the image builder's
STALE_UNOWNED = 60.0  # s: a private directory without its owner file this old is stale

SERVER_STOP_WAIT = 7.0  # a server's own shutdown allows 5 s for responses in flight


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def server_count(requested: str | None) -> int:
    """``auto`` (or nothing): one server process per usable CPU; 1 means a single process."""
    value = (requested or os.environ.get(PROCESSES_ENV) or "auto").strip().lower()
    if value == "auto":
        return usable_cpus()
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise ValueError(f"{PROCESSES_ENV} / --processes: expected auto or 1..64, got {value!r}")
    return int(value)


def listen_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def remove_stale_private_dirs(parent: Path | None = None) -> list[str]:
    """Remove the private directories (ours: ``PRIVATE_NAME``, this user's, with an ``owner``
    or, older than ``STALE_UNOWNED``, a ``metrics`` directory) whose fetcher is gone."""
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    removed = []
    for candidate in parent.glob(f"{PRIVATE_PREFIX}*"):
        try:
            if not PRIVATE_NAME.fullmatch(candidate.name) or not candidate.is_dir() \
                    or candidate.stat().st_uid != os.getuid():
                continue
            owner = (candidate / "owner").read_text().split()
        except FileNotFoundError:  # being made right now, or left before it had an owner
            with contextlib.suppress(OSError):
                if (candidate / "metrics").is_dir() and \
                        time.time() - candidate.stat().st_mtime > STALE_UNOWNED:
                    shutil.rmtree(candidate, ignore_errors=True)
                    removed.append(str(candidate))
            continue
        except OSError:
            continue
        if len(owner) == 2 and owner[0].isdigit() and _started(int(owner[0])) == owner[1]:
            continue  # its fetcher runs
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(str(candidate))
    return removed


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), "-" when unknown,
    "" when there is no such process: a pid and its start time name one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return ""
    except (OSError, IndexError):
        return "-" if _exists(pid) else ""


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run(config: CacheConfig, servers: int) -> int:
    """Serve until SIGINT/SIGTERM; the exit status (non-zero if a server process died)."""
    stale = remove_stale_private_dirs()
    if stale:
        emit("processes.cleaned", removed=stale,
             reason="private directories of a cache whose processes were all killed")
    private = None
    if servers > 1:
        try:
            private = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX))  # 0700: this user only
            (private / "owner").write_text(f"{os.getpid()} {_started(os.getpid())}\n")
        except OSError as exc:  # e.g. a read-only root file system without a /tmp volume
            emit("config.warning", logging.WARNING, problem=f"cannot create a private directory "
                 f"for the cache's processes ({exc}); running as one process")
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
                private = None
    if private is None:
        from .server import serve_on

        tcp = listen_tcp(config.addr_host, config.addr_port)
        serve_on(config, tcp, tls=True, debug_sock=_debug_listener(config))
        return 0
    try:
        (private / "metrics").mkdir()
        os.environ[METRICS_ENV] = str(private / "metrics")  # before prometheus_client loads
        return _run_processes(config, servers, private)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _debug_listener(config: CacheConfig) -> socket.socket | None:
    """``http.debug.addr``'s socket: served by the fetcher (or the only process), which sees
    every process's metrics and does the storage's writes."""
    return listen_tcp(config.debug.host, config.debug.port) if config.debug else None


def _run_processes(config: CacheConfig, servers: int, private: Path) -> int:
    from .server import serve_on  # imports aiohttp and prometheus_client: after METRICS_ENV
    from .storage import BlobStore

    removed = BlobStore(config.root, config.blobttl).prepare()  # before any process serves
    if removed:
        emit("storage.cleaned", leftovers=removed, reason="partial downloads from a crash")
    tcp = listen_tcp(config.addr_host, config.addr_port)
    debug = _debug_listener(config)
    fetcher_path = str(private / "fetcher.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(fetcher_path)
    unix.listen(1024)
    unix.setblocking(False)
    lifeline, keep_alive = os.pipe()
    children: dict[int, str] = {}
    for index in range(1, servers + 1):
        label = f"server-{index}"
        pid = os.fork()
        if pid == 0:  # a server process: clients in, misses to the fetcher
            status = 1
            try:
                os.close(keep_alive)
                unix.close()
                if debug is not None:
                    debug.close()
                set_process_label(label)
                serve_on(config, tcp, tls=True, fetcher=fetcher_path, lifeline=lifeline,
                         private=private)
                status = 0
            except BaseException:  # the child must never return into the parent's code
                emit_exception("process.crashed", reason="a server process failed")
            finally:
                # The fetcher removes the private directory when it stops; if it was killed,
                # the server processes outlive it, and the last one out removes it instead.
                shutil.rmtree(private, ignore_errors=True)
                os._exit(status)
        children[pid] = label
    os.close(lifeline)
    tcp.close()
    set_process_label("fetcher")
    supervisor = Supervisor(children)
    serve_on(config, unix, tls=False, supervisor=supervisor, debug_sock=debug,
             private=private)
    os.close(keep_alive)
    return supervisor.status


class Supervisor:
    """The fetcher's watch over its server processes (crash-only: one dies, all stop)."""

    def __init__(self, children: dict[int, str]):
        self.children = dict(children)
        self.status = 0
        self._watch: asyncio.Task | None = None

    async def start(self, _app=None) -> None:
        emit("processes.started", servers=len(self.children), fetcher_pid=os.getpid())
        self._watch = asyncio.create_task(self._watch_children())

    async def _watch_children(self) -> None:
        while self.children:
            await asyncio.sleep(0.5)
            for pid, label in list(self.children.items()):
                done, code = _reap(pid)
                if done:
                    del self.children[pid]
                    emit("process.exited", logging.ERROR, process=label, pid=pid, status=code,
                         action="stopping the cache: restart it (crash-only supervision)")
                    self.status = 1
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

    async def stop(self, _app=None) -> None:
        """Stop the servers first (they stop accepting, finish what they send), then us."""
        if self._watch:
            self._watch.cancel()
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + SERVER_STOP_WAIT
        while self.children and time.monotonic() < deadline:
            for pid in list(self.children):
                if _reap(pid)[0]:
                    del self.children[pid]
            await asyncio.sleep(0.05)
        for pid in self.children:  # did not stop in time
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.children.clear()


def _reap(pid: int) -> tuple[bool, int | None]:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True, None
    return done == pid, os.waitstatus_to_exitcode(status) if done == pid else None
