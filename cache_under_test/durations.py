"""Go-style durations: the one definition is the neutral ``dtr_cache_formats.durations``."""

from dtr_cache_formats.durations import DurationError, human, parse_duration

__all__ = ["DurationError", "human", "parse_duration"]
