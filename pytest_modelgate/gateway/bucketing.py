"""Sticky bucketing: the same route and key fall in the same bucket, in every process, forever.

``bucket_of(route, key)`` is the first 8 bytes of ``SHA-256(route + "\\x00" + salt + "\\x00" +
key)`` (all UTF-8) read as a big-endian unsigned integer, modulo :data:`BUCKETS` (10,000 basis
points), the way flagd and Unleash bucket: no process seed (unlike Python's ``hash``), so a key
keeps its arm across processes, replicas and restarts. A route sends bucket ``b`` to the canary
when ``b < canary_percent * 100``; raising the percentage only adds keys to the canary, it never
moves a key that was already there back. The shadow sample uses the salt ``"shadow"``, so it is
independent of the canary. Without a key a request draws a uniformly random bucket.
"""

from __future__ import annotations

import hashlib

__all__ = ["BUCKETS", "basis_points", "bucket_of"]

#: Buckets per route: one per basis point (0.01%).
BUCKETS = 10_000


def bucket_of(route: str, key: str, *, salt: str = "") -> int:
    """The bucket (0..9999) of ``key`` on ``route``; stable across processes and versions."""
    digest = hashlib.sha256(f"{route}\x00{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def basis_points(percent: float) -> int:
    """``percent`` (0..100) as a bucket threshold: buckets below it are in the share."""
    return round(percent * BUCKETS / 100)
