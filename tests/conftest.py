"""What every test of the project shares: the Python processes the tests start keep their
compiled bytecode between runs.

The tests start a few hundred Python processes (``pytest checks/`` against a bench, the cache's
workers, the DTR stand-in on loopback). With ``PYTHONDONTWRITEBYTECODE`` set, as on this
project's machines, each of them compiles (and pytest assertion-rewrites) every module it
imports again: about a second of CPU per run. Their bytecode goes to a cache of its own under
``.pytest_cache/`` instead, out of the source tree; Python checks it against each source's
mtime, so a stale entry is never used.
"""

import os

from dtr_cache_check.testkit.local import REPO_ROOT

os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(REPO_ROOT / ".pytest_cache" / "pycache"))
