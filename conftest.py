"""Registers the harness plugin (options, target, evidence, reports) for ``pytest checks/``."""

pytest_plugins = ["fixtures.harness.plugin"]
