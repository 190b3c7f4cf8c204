"""memos_grpc.store.principals on a real database: principals, their credentials, and the cubes they created."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from _stored_cubes import cube_row, insert_cubes

from memos_grpc._proto.memos.v1 import principal_pb2
from memos_grpc.store.database import Connection, Database
from memos_grpc.store.principals import (
    StoredCredential,
    credential,
    credentials,
    cubes_created_by,
    delete_principal,
    insert_credential,
    insert_principal,
    principal_by_id,
    principal_exists,
    principals,
    revoke_credential,
    update_principal,
)
from memos_grpc.store.rows import set_timestamp

T0 = datetime(2030, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
LATER = T0 + timedelta(days=30)


def _principal(principal_id: str, *, admin: bool = False) -> principal_pb2.Principal:
    return principal_pb2.Principal(
        name=f"principals/{principal_id}", display_name=principal_id.title(), admin=admin, etag=f"{principal_id}-1"
    )


def _add_principals(database: Database, *added: principal_pb2.Principal) -> None:
    def apply(cursor: Connection) -> None:
        for principal in added:
            insert_principal(cursor, principal.name.split("/")[1], principal, T0)

    database.write(apply)


def _add_credentials(database: Database) -> None:
    """k1 and k2 of alice (k2 expires), k3 of bob."""

    def apply(cursor: Connection) -> None:
        insert_credential(cursor, "k1", "alice", "digest-1", "laptop", T0, None)
        insert_credential(cursor, "k2", "alice", "digest-2", "ci", T0, LATER)
        insert_credential(cursor, "k3", "bob", "digest-3", "", T1, None)

    database.write(apply)


def _credentials(database: Database) -> list[StoredCredential]:
    with database.read() as cursor:
        return sorted(credentials(cursor), key=lambda known: known.credential_id)


def test_principals_are_stored_found_and_replaced(database: Database) -> None:
    alice, bob = _principal("alice", admin=True), _principal("bob")
    _add_principals(database, alice, bob)
    with database.read() as cursor:
        assert sorted(principals(cursor), key=lambda p: p.name) == [alice, bob]
        assert principal_exists(cursor, "alice") and not principal_exists(cursor, "carol")
        assert principal_by_id(cursor, "bob") == bob
        assert principal_by_id(cursor, "carol") is None
        # The admin flag and the creation time are columns of their own.
        assert cursor.execute("SELECT admin, create_time FROM principals WHERE principal_id = 'alice'").fetchone() == (
            True,
            T0,
        )
    keyed = principal_pb2.Principal()
    keyed.CopyFrom(bob)
    keyed.public_keys.add(key_id="ed25519:abc", public_key=bytes(32), algorithm="ed25519")
    keyed.etag = "bob-2"
    database.write(lambda cursor: update_principal(cursor, "bob", keyed))
    with database.read() as cursor:
        assert principal_by_id(cursor, "bob") == keyed
        assert principal_by_id(cursor, "alice") == alice


def test_credentials_keep_their_digest_and_times(database: Database) -> None:
    _add_principals(database, _principal("alice"), _principal("bob"))
    _add_credentials(database)
    assert _credentials(database) == [
        StoredCredential("k1", "alice", "digest-1", None, None),
        StoredCredential("k2", "alice", "digest-2", LATER, None),
        StoredCredential("k3", "bob", "digest-3", None, None),
    ]
    expected = principal_pb2.Credential(description="ci")
    set_timestamp(expected.create_time, T0)
    set_timestamp(expected.expire_time, LATER)
    with database.read() as cursor:
        assert credential(cursor, "alice", "k2") == expected
        assert credential(cursor, "bob", "k2") is None  # another principal's credential is not found by its id
        assert credential(cursor, "alice", "k9") is None


def test_a_revoked_credential_reads_back_with_its_revoke_time(database: Database) -> None:
    _add_principals(database, _principal("alice"), _principal("bob"))
    _add_credentials(database)
    database.write(lambda cursor: revoke_credential(cursor, "k1", T1))
    with database.read() as cursor:
        revoked = credential(cursor, "alice", "k1")
    assert revoked is not None and revoked.HasField("revoke_time")
    assert revoked.revoke_time.ToDatetime(tzinfo=UTC) == T1
    assert revoked.description == "laptop" and not revoked.HasField("expire_time")
    assert [known.revoke_time for known in _credentials(database)] == [T1, None, None]


def test_deleting_a_principal_takes_its_credentials_only(database: Database) -> None:
    alice, bob = _principal("alice"), _principal("bob")
    _add_principals(database, alice, bob)
    _add_credentials(database)
    database.write(lambda cursor: delete_principal(cursor, "alice"))
    with database.read() as cursor:
        assert principals(cursor) == [bob]
        assert not principal_exists(cursor, "alice")
    assert [known.credential_id for known in _credentials(database)] == ["k3"]


def test_the_cubes_a_principal_created_per_space_in_id_order(database: Database) -> None:
    alice, bob = "principals/alice", "principals/bob"
    insert_cubes(
        database,
        [
            cube_row("s2", "b", created=T0, owner=alice),
            cube_row("s1", "c", created=T0, owner=alice),
            cube_row("s1", "a", created=T0, owner=alice),
            cube_row("s1", "b", created=T0, owner=bob),
        ],
    )
    with database.read() as cursor:
        created = cubes_created_by(cursor, alice)
        assert list(created.items()) == [("s1", ["a", "c"]), ("s2", ["b"])]
        assert cubes_created_by(cursor, bob) == {"s1": ["b"]}
        assert cubes_created_by(cursor, "principals/carol") == {}
