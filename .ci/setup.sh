#!/usr/bin/env bash
# Everything the checks and the tests need on a fresh Debian machine (idempotent, quick when
# done): Debian's Docker engine and containerd's ctr (the containerd client check; docker.io
# pulls containerd in, named here so ctr is never left to chance), distribution registry,
# debootstrap (and nginx, wrk for the benchmarks; chromium, headless, to render the HTML report
# in tests/docker); a running dockerd (its managed containerd serves ctr too); the Python
# packages from pyproject.toml. No Docker Hub: images are built locally.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
for tool in dockerd:docker.io ctr:containerd docker-registry:docker-registry \
        debootstrap:debootstrap nginx:nginx-light wrk:wrk chromium:chromium; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing="$missing ${tool##*:}"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing \
        ca-certificates iproute2
fi

python3 -m pip install -q --disable-pip-version-check -e ".[dev]"
bash .ci/dockerd.sh
