"""Cube rows' conversions agree with protobuf's own."""

from __future__ import annotations

from datetime import UTC

import numpy as np
from google.protobuf import timestamp_pb2

from memos_grpc.store.rows import to_datetime


def test_to_datetime_is_protobufs_conversion() -> None:
    rng = np.random.default_rng(3)
    edges = [(1, 0), (-1, 999_999_999), (0, 1_000), (253_402_300_799, 999_999_999), (-62_135_596_800, 0)]
    seconds_drawn = rng.integers(-62_135_596_800, 253_402_300_799, 2_000)
    drawn = zip(seconds_drawn, rng.integers(0, 1_000_000_000, 2_000), strict=True)
    for seconds, nanos in [*edges, *drawn]:
        stamp = timestamp_pb2.Timestamp(seconds=int(seconds), nanos=int(nanos))
        assert to_datetime(stamp) == stamp.ToDatetime(tzinfo=UTC), (seconds, nanos)
    assert to_datetime(timestamp_pb2.Timestamp()) is None
