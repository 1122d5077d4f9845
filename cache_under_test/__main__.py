"""``python -m cache_under_test CONFIG``: validate the config, then serve (or exit non-zero)."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .config import ConfigError, describe, load_config
from .events import capture_process_errors, emit, redact, setup_logging
from .processes import run, server_count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cache_under_test", description=__doc__)
    parser.add_argument("config", nargs="?", default="/config.yml",
                        help="registry-style config.yml with the downstream middleware")
    parser.add_argument("--check", action="store_true",
                        help="validate the configuration and exit (0 when valid)")
    parser.add_argument("--processes", default=None, metavar="N|auto",
                        help="server processes sharing the port (default: $DTRCACHE_PROCESSES "
                        "or auto, one per usable CPU); 1 runs the whole cache in one process")
    args = parser.parse_args(argv)
    try:
        servers = server_count(args.processes)
    except ValueError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {redact(problem)}", file=sys.stderr)
        print(f"{args.config}: {len(exc.problems)} problem(s); the cache did not start",
              file=sys.stderr)
        return 2

    setup_logging(config.log_level)
    if config.output.profile == "distribution":  # distribution's lines instead of events
        from .distlog import install

        install(config.output, config.log_level)
    capture_process_errors()
    for warning in config.warnings:
        emit("config.warning", logging.WARNING, problem=warning)
    emit("config.loaded", version=__version__, processes=servers, **describe(config))
    if args.check:
        return 0

    return run(config, servers)


if __name__ == "__main__":
    sys.exit(main())
