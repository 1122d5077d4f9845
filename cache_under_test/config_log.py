"""How the cache shows itself in its logs: ``DTRCACHE_PROFILE`` (``reference``: JSON events,
X-Cache; ``distribution``: distribution's lines, see ``distlog``) and the ``log`` keys that
distribution's formatter reads (``log.formatter``, ``log.fields``, ``log.accesslog``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PROFILE_ENV = "DTRCACHE_PROFILE"
PROFILES = ("reference", "distribution")
# distribution's formatters (registry/registry.go, configureLogging); logstash is not kept here.
FORMATTERS = ("text", "json")


@dataclass(frozen=True)
class LogOutput:
    """``profile``; and, for the distribution profile, logrus's ``formatter``, the static
    ``fields`` of every line, and whether the combined access log (stdout) is written."""

    profile: str = "reference"
    formatter: str = "text"
    fields: dict = field(default_factory=dict)
    access_log: bool = True


def log_output(raw: dict, environ: Mapping[str, str], problems: list[str]) -> LogOutput:
    """The profile from ``environ`` and the ``log`` section of ``raw``; each bad value is a
    line in ``problems`` (the ``log`` keys only in the distribution profile: the reference
    profile writes its JSON events whatever they say)."""
    profile = environ.get(PROFILE_ENV, "").strip().lower() or "reference"
    if profile not in PROFILES:
        problems.append(f"{PROFILE_ENV}: {profile!r} is not one of {', '.join(PROFILES)}")
        profile = "reference"
    log = raw.get("log") if isinstance(raw.get("log"), dict) else {}
    mine: list[str] = []
    formatter = str(log.get("formatter") or "text").lower()
    if formatter not in FORMATTERS:
        if formatter == "logstash":
            mine.append("log.formatter: logstash is not supported by this cache (text "
                            "or json)")
        else:  # distribution's own refusal
            mine.append(f"log.formatter: unsupported logging formatter: {formatter!r} "
                            "(text or json)")
        formatter = "text"
    fields = log.get("fields") or {}
    if not isinstance(fields, dict):
        mine.append("log.fields: must be a mapping")
        fields = {}
    access = log.get("accesslog") or {}
    disabled = access.get("disabled", False) if isinstance(access, dict) else False
    if not isinstance(disabled, bool):
        mine.append(f"log.accesslog.disabled: {disabled!r} must be true or false")
        disabled = False
    if profile == "distribution":
        problems += mine
    return LogOutput(profile, formatter, {str(k): v for k, v in fields.items()}, not disabled)
