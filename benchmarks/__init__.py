"""Side-by-side benchmarks: the reference cache against distribution and nginx.

Run with ``python -m benchmarks`` (``--quick`` for the short version).
"""
