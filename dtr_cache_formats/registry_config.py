"""distribution's configuration rule that both sides read: any key of config.yml can be
overridden by an environment variable ``REGISTRY_<SECTION>_<KEY>`` (distribution's
docs/configuration.md, "Override specific configuration options")."""

from __future__ import annotations

from collections.abc import Mapping

import yaml

ENV_PREFIX = "REGISTRY_"


def apply_env_overrides(raw: dict, environ: Mapping[str, str]) -> list[str]:
    """Apply ``REGISTRY_<SECTION>_<KEY>=value`` overrides in place, as distribution's
    configuration/parser.go does; return the keys overridden.

    The variables are applied in sorted order. The name after the prefix is split at every
    ``_``, one part a level (a key holding ``_`` cannot be named); a part matches a key
    case-insensitively, else a new key is made, lowercased; in a list a part is an index (the
    length appends; beyond it, or not a number, is an error, as distribution refuses to
    start); a scalar met with parts left is left alone. The value is read as YAML (``true``,
    ``5``, ``24h``)."""
    applied = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
            continue
        try:
            value = yaml.safe_load(environ[name])
        except yaml.YAMLError:
            value = environ[name]
        key = _overwrite(raw, name, name[len(ENV_PREFIX):].split("_"), value, [])
        if key:
            applied.append(key)
    return applied


def _overwrite(node: object, name: str, parts: list[str], value: object,
               path: list[str]) -> str | None:
    """Set ``value`` at ``parts`` under ``node``; the dotted key set (None: left alone)."""
    part = parts[0]
    if isinstance(node, list):
        if not part.isdigit():
            raise ValueError(f"{name}: non-numeric index {part!r}")
        index = int(part)
        if index > len(node):
            raise ValueError(f"{name}: undefined index {index} (the list has {len(node)})")
        if index == len(node):
            node.append({} if len(parts) > 1 else None)
        if len(parts) == 1:
            node[index] = value
            return ".".join([*path, part])
        return _overwrite(node[index], name, parts[1:], value, [*path, part])
    if not isinstance(node, dict):
        return None  # a scalar with parts left: distribution leaves it as it is
    key = next((k for k in node if str(k).upper() == part.upper()), part.lower())
    if len(parts) == 1:
        node[key] = value
        return ".".join([*path, str(key)])
    if not isinstance(node.get(key), (dict, list)):
        if key in node and node[key] is not None:
            return None
        node[key] = {}
    return _overwrite(node[key], name, parts[1:], value, [*path, str(key)])
