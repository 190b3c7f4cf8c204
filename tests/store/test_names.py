"""Resource names and generated ids (``store/names``)."""

from __future__ import annotations

import uuid

from memos_grpc.store.names import new_uuids


def test_uuids_of_a_batch_are_random_version_4_and_distinct() -> None:
    made = new_uuids(500) + new_uuids(500)
    parsed = [uuid.UUID(text) for text in made]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == made  # canonical text, as str(uuid4()) gives
    assert len(set(made)) == 1000
    assert new_uuids(0) == []
