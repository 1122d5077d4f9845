"""Repository names and digests as the distribution spec defines them, validated before use.

Everything that reaches the file system goes through here first: a name or digest that is not
exactly of the spec's grammar is refused, so no request can address a path outside the storage
root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dtr_cache_formats.registry_api import ALGORITHMS, NAME_MAX, NAME_RE, TAG_RE


class InvalidName(ValueError):
    """A repository name that is not of the distribution grammar."""


class InvalidDigest(ValueError):
    """A digest that is malformed or of an algorithm this cache cannot verify."""


@dataclass(frozen=True)
class Digest:
    """A validated content digest, e.g. ``sha256:<64 hex>``."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise InvalidName."""
    if not name or len(name) > NAME_MAX:
        raise InvalidName(f"repository name must be 1 to {NAME_MAX} characters")
    if not NAME_RE.match(name):
        raise InvalidName("invalid repository name")
    return name


def parse_digest(text: str) -> Digest:
    """Parse ``algorithm:hex``; only lower-case hex of the algorithm's exact length passes."""
    if len(text) > 8 + max(ALGORITHMS.values()):
        raise InvalidDigest("digest too long")
    algorithm, sep, hexpart = text.partition(":")
    if not sep:
        raise InvalidDigest("digest must be algorithm:hex")
    if algorithm not in ALGORITHMS:
        raise InvalidDigest(f"unsupported digest algorithm {algorithm[:16]!r}")
    if len(hexpart) != ALGORITHMS[algorithm] or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise InvalidDigest(f"{algorithm} digest must be {ALGORITHMS[algorithm]} lower-case hex")
    return Digest(algorithm, hexpart)


def is_digest_reference(reference: str) -> bool:
    """True when a manifest reference is a digest rather than a tag."""
    return ":" in reference


def parse_reference(reference: str) -> str:
    """Validate a manifest reference (tag or digest) and return it unchanged."""
    if is_digest_reference(reference):
        parse_digest(reference)
    elif not TAG_RE.match(reference):
        raise InvalidName("invalid tag")
    return reference
