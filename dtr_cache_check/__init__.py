"""In the checkout, the installable package ``dtr_cache_check`` is the ``fixtures/`` folder.

An installed wheel holds that folder's modules as ``dtr_cache_check`` (pyproject.toml maps
them): the harness never installs a top-level package named ``fixtures``, which would shadow
the long-established ``fixtures`` package on PyPI. In the checkout, this file lends the same
name to the same files, so that checks, tests and the plugin import them one way only
(``import dtr_cache_check.harness``), whether installed or not. Not part of the wheel.
"""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parent.parent / "fixtures")]
