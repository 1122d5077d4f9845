"""What every test of the project shares: the Python processes the tests start keep their
compiled bytecode between runs; under ``-n 2 --dist loadgroup`` (README's test command) every
test that uses the Docker engine runs on one worker, in order, and the others beside it.

The tests start a few hundred Python processes (``pytest checks/`` against a bench, the cache's
workers, the DTR stand-in on loopback). With ``PYTHONDONTWRITEBYTECODE`` set, as on this
project's machines, each of them compiles (and pytest assertion-rewrites) every module it
imports again: about a second of CPU per run. Their bytecode goes to a cache of its own under
``.pytest_cache/`` instead, out of the source tree; Python checks it against each source's
mtime, so a stale entry is never used. Those child runs also leave out the pytest plugins
installed for this project's own tests (hypothesis, anyio, pytest-benchmark): ``pytest
checks/`` uses none of them, and loading them costs each run about 0.4 s.
"""

import os

import pytest

from dtr_cache_check.testkit.local import REPO_ROOT

os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(REPO_ROOT / ".pytest_cache" / "pycache"))


# Plugins of this project's tests that ``pytest checks/`` (the tests' child runs) never uses.
UNUSED_BY_THE_CHECKS = ("hypothesispytest", "anyio", "benchmark")


@pytest.fixture(scope="session", autouse=True)
def _child_checks_runs_skip_unused_plugins() -> None:
    """In the process that runs the tests (an xdist worker, not the controller, whose
    environment the workers inherit before they load these plugins themselves)."""
    blocked = " ".join(f"-p no:{name}" for name in UNUSED_BY_THE_CHECKS)
    os.environ["PYTEST_ADDOPTS"] = f"{os.environ.get('PYTEST_ADDOPTS', '')} {blocked}".strip()


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The Docker tests share one engine, its swarm, /etc/hosts and the daemon's certs.d, and
    the fault benches are built for one session: one worker runs them all, in their order.
    The unit and integration tests (loopback servers, temp dirs) share nothing with them."""
    for item in items:
        if item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.xdist_group("docker"))
