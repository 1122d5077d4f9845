"""The checkout's only wiring: the harness plugin is registered by its ``pytest11`` entry point
once the project is installed (``pip install -e .``, as .ci/setup.sh does); a bare checkout
registers it here instead, so ``pytest checks/`` works either way."""

import importlib.metadata

_INSTALLED = any(ep.value == "dtr_cache_check.harness.plugin"
                 for ep in importlib.metadata.entry_points(group="pytest11"))
pytest_plugins = [] if _INSTALLED else ["dtr_cache_check.harness.plugin"]
