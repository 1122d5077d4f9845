"""The fault benches (running reference deployments), one per topology, for the whole
fault-matrix session. Faults are ordered by topology, and only one bench runs at a time: asking
for another topology takes the current one down first."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import docker
import docker.errors
import pytest

from dtr_cache_check.testkit.faults.bench import FaultBench


@pytest.fixture(scope="session")
def bench_for(tmp_path_factory) -> Iterator[Callable[[str], FaultBench]]:
    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine ({exc}); start one with .ci/dockerd.sh")
    current: dict[tuple, FaultBench] = {}

    def get(topology: str = "single", wan: tuple[str, str] | None = None,
            profile: str = "reference") -> FaultBench:
        key = (topology, wan, profile)
        if key not in current:
            for running in current.values():
                running.close()
            current.clear()
            name = topology + (f"-{wan[0]}-{wan[1]}-far" if wan else "") + (
                f"-{profile}" if profile != "reference" else "")
            current[key] = FaultBench(tmp_path_factory.mktemp(f"fault-bench-{name}"),
                                      topology=topology, wan=wan, cache_profile=profile)
        return current[key]

    yield get
    for running in current.values():
        running.close()


@pytest.fixture(scope="session")
def bench(bench_for) -> FaultBench:
    """The single-cache bench."""
    return bench_for("single")
