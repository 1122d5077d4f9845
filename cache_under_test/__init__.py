"""The reference DTR content cache: a read-only, TTL-bounded blob cache in front of DTR.

Run it as ``python -m cache_under_test /path/to/config.yml`` (or ``/start.sh /config.yml`` in
its image). It reads the DTR seed guide's ``config.yml`` unchanged.
"""

__version__ = "0.1.0"
