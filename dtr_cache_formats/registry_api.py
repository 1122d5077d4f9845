"""distribution's HTTP API constants and its repository-name grammar (distribution/reference)."""

from __future__ import annotations

import re

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"

# distribution/reference grammar: path components joined by "/", lower case alphanumerics
# separated by ".", "_", "__" or runs of "-".
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
NAME_MAX = 255
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")

# Hash algorithms of the digest grammar, with the length of their hex encoding.
ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
