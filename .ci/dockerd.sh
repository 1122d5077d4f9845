#!/bin/sh
# Make a Docker engine available on this machine (idempotent: safe to run twice).
#
# - installs docker.io, debootstrap and docker-registry with apt-get when missing;
# - if `docker info` fails, starts `dockerd --iptables=false --max-download-attempts=1` in the
#   background with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 (no Docker Hub look-ups), logging to
#   /tmp/dockerd.log and writing its pid to /tmp/dockerd.pid;
# - waits (bounded) until `docker info` answers; exits non-zero with the log tail otherwise.
#
# The dockerd started here is left running on purpose: stop it with
#   kill "$(cat /tmp/dockerd.pid)"
set -eu

LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
PIDFILE=${DOCKERD_PIDFILE:-/tmp/dockerd.pid}
WAIT=${DOCKERD_WAIT:-60}

log() { echo "dockerd.sh: $*" >&2; }

need_pkgs=""
command -v dockerd >/dev/null 2>&1 || need_pkgs="$need_pkgs docker.io"
command -v debootstrap >/dev/null 2>&1 || need_pkgs="$need_pkgs debootstrap"
command -v docker-registry >/dev/null 2>&1 || need_pkgs="$need_pkgs docker-registry"
if [ -n "$need_pkgs" ]; then
    log "installing:$need_pkgs"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt-get may hold the lock (e.g. a background install): wait for it, bounded.
    apt-get -o DPkg::Lock::Timeout=600 update -q
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $need_pkgs
fi

docker_ok() { docker info >/dev/null 2>&1; }

if docker_ok; then
    log "docker engine already answers"
    exit 0
fi

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pid=""
if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if alive "$pid"; then
        log "dockerd (pid $pid) already started by this script; waiting for it"
    else
        pid=""
    fi
fi

if [ -z "$pid" ]; then
    # A stale pid file from a dead dockerd makes the next one refuse to start.
    if [ -f /var/run/docker.pid ] && ! alive "$(cat /var/run/docker.pid 2>/dev/null)"; then
        rm -f /var/run/docker.pid
    fi
    log "starting dockerd --iptables=false (log: $LOG, pid file: $PIDFILE)"
    # setsid: its own session, so it outlives the shell (and process group) that started it.
    # --max-download-attempts=1: a layer that fails (the fault matrix breaks the daemon's trust
    # on purpose) fails the pull at once, not after 50 s of retries that go on hitting the
    # cache (a refused handshake in the next run's window).
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid dockerd --iptables=false \
        --max-download-attempts=1 >>"$LOG" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PIDFILE"
fi

i=0
while [ "$i" -lt "$WAIT" ]; do
    # dockerd writes its own pid file: prefer it (setsid may have forked).
    real=$(cat /var/run/docker.pid 2>/dev/null || true)
    if alive "$real" && [ "$real" != "$pid" ]; then
        pid=$real
        echo "$pid" >"$PIDFILE"
    fi
    if docker_ok; then
        log "docker engine ready after ${i}s (dockerd pid $pid)"
        exit 0
    fi
    if ! alive "$pid"; then
        log "dockerd (pid $pid) exited; last lines of $LOG:"
        tail -n 30 "$LOG" >&2 || true
        exit 1
    fi
    sleep 1
    i=$((i + 1))
done

log "docker engine not ready after ${WAIT}s; last lines of $LOG:"
tail -n 30 "$LOG" >&2 || true
exit 1
