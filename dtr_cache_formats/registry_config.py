"""distribution's configuration rule that both sides read: any key of config.yml can be
overridden by an environment variable ``REGISTRY_<SECTION>_<KEY>`` (distribution's
docs/configuration.md, "Override specific configuration options")."""

from __future__ import annotations

from collections.abc import Mapping

import yaml

ENV_PREFIX = "REGISTRY_"


def apply_env_overrides(raw: dict, environ: Mapping[str, str]) -> list[str]:
    """Apply ``REGISTRY_<SECTION>_<KEY>=value`` overrides in place; return the keys overridden.

    Each ``_``-separated part selects a key, matched case-insensitively against what the file
    already has (longest match first, so ``rootdirectory`` and ``some_key`` both work); parts
    that match nothing create new keys. Values are read as YAML scalars (``true``, ``5``).
    """
    applied = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
            continue
        try:
            value = yaml.safe_load(environ[name])
        except yaml.YAMLError:
            value = environ[name]
        parts = name[len(ENV_PREFIX):].lower().split("_")
        node, path = raw, []
        while parts:
            key, used = _match_key(node, parts)
            path.append(str(key))
            parts = parts[used:]
            if not parts:
                node[key] = value
                applied.append(".".join(path))
            else:
                if not isinstance(node.get(key), dict):
                    node[key] = {}
                node = node[key]
    return applied


def _match_key(node: dict, parts: list[str]) -> tuple[object, int]:
    """The existing key of ``node`` named by the longest prefix of ``parts``, and its length."""
    lowered = {str(k).lower(): k for k in node}
    for n in range(len(parts), 0, -1):
        candidate = "_".join(parts[:n])
        if candidate in lowered:
            return lowered[candidate], n
    return parts[0], 1
