"""Cube rows' conversions agree with protobuf's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from google.protobuf import timestamp_pb2

from memos_grpc.store.rows import set_timestamp, to_datetime


def test_to_datetime_is_protobufs_conversion() -> None:
    rng = np.random.default_rng(3)
    edges = [(1, 0), (-1, 999_999_999), (0, 1_000), (253_402_300_799, 999_999_999), (-62_135_596_800, 0)]
    seconds_drawn = rng.integers(-62_135_596_800, 253_402_300_799, 2_000)
    drawn = zip(seconds_drawn, rng.integers(0, 1_000_000_000, 2_000), strict=True)
    for seconds, nanos in [*edges, *drawn]:
        stamp = timestamp_pb2.Timestamp(seconds=int(seconds), nanos=int(nanos))
        assert to_datetime(stamp) == stamp.ToDatetime(tzinfo=UTC), (seconds, nanos)
    assert to_datetime(timestamp_pb2.Timestamp()) is None


def test_set_timestamp_is_protobufs_conversion() -> None:
    rng = np.random.default_rng(4)
    offsets = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    edges = [
        datetime(1970, 1, 1),
        datetime(1969, 12, 31, 23, 59, 59, 999_999),
        datetime(1, 1, 1),
        datetime(9999, 12, 31),
    ]
    drawn = [
        datetime(1, 1, 1) + timedelta(microseconds=int(us))
        for us in rng.integers(0, 315_537_897_599_999_999, 2_000, dtype=np.int64)
    ]
    for naive in [*edges, *drawn]:
        for when in (naive, naive.replace(tzinfo=offsets[int(rng.integers(3))])):
            if when.tzinfo is not None and not datetime(1, 1, 2) <= naive <= datetime(9999, 12, 30):
                continue  # an offset would move it out of datetime's range
            ours, theirs = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
            set_timestamp(ours, when)
            theirs.FromDatetime(when)
            assert ours == theirs, when
