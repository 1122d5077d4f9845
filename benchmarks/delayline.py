"""Upstream distance on loopback: the WAN relay's ``TcpProxy`` as a pure delay line.

Each chunk is written ``one_way`` seconds later in each direction (not a throttle), so every
request on a kept-alive connection pays the round trip; ``one_way`` can be changed while it
runs. The implementation is ``dtr_cache_check.reference.wanrelay`` (no copy here).
"""

from __future__ import annotations

from dtr_cache_check.reference.wanrelay import TcpProxy


class DelayLine(TcpProxy):
    """``127.0.0.1:<port>`` -> target, each chunk delayed ``one_way`` seconds."""

    def __init__(self, target_host: str, target_port: int, one_way: float = 0.0):
        super().__init__(target_host, target_port, one_way=one_way)
