"""memos_grpc.store.spaces on a real database: spaces, their live cube counts, roles, and the catalog's copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _stored_cubes import cube_row, insert_cubes

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, space_pb2
from memos_grpc.store import spaces as space_store
from memos_grpc.store.catalog import SearchCatalog
from memos_grpc.store.database import Connection, Database

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
OWNER, EDITOR, VIEWER = access_pb2.ROLE_OWNER, access_pb2.ROLE_EDITOR, access_pb2.ROLE_VIEWER
ALICE, BOB, CAROL = "principals/alice", "principals/bob", "principals/carol"
Rule = space_pb2.RedactionRule


def _space(space_id: str, owner: str = ALICE) -> space_pb2.Space:
    return space_pb2.Space(name=f"spaces/{space_id}", display_name=space_id.upper(), owner=owner, etag=f"{space_id}-1")


def _create(database: Database, *created: space_pb2.Space) -> None:
    def apply(cursor: Connection) -> None:
        for space in created:
            space_store.insert_space(cursor, space.name.split("/")[1], space, T0, space.owner)

    database.write(apply)


def _read(database: Database, space_id: str) -> space_pb2.Space | None:
    with database.read() as cursor:
        return space_store.space_by_id(cursor, space_id)


def test_a_space_is_stored_with_its_owner_as_its_one_owner(database: Database) -> None:
    notes = _space("notes")
    _create(database, notes)
    with database.read() as cursor:
        assert space_store.space_exists(cursor, "notes") and not space_store.space_exists(cursor, "other")
        assert space_store.space_by_id(cursor, "notes") == notes
        assert space_store.space_by_id(cursor, "other") is None
        assert space_store.space_etag(cursor, "notes") == "notes-1"
        assert space_store.space_etag(cursor, "other") is None
        assert space_store.space_roles(cursor, "notes") == {ALICE: OWNER}
        assert space_store.policy_state(cursor, "notes") == space_store.PolicyState("", T0)
        assert space_store.policy_state(cursor, "other") is None


def test_a_taken_id_is_refused_and_its_write_rolls_back(database: Database) -> None:
    _create(database, _space("notes"))

    def apply(cursor: Connection) -> None:
        space_store.insert_space(cursor, "fresh", _space("fresh", BOB), T0, BOB)
        space_store.insert_space(cursor, "notes", _space("notes", BOB), T0, BOB)

    with pytest.raises(space_store.SpaceIdTaken):
        database.write(apply)
    with database.read() as cursor:
        assert space_store.space_by_id(cursor, "notes") == _space("notes")
        assert space_store.space_roles(cursor, "notes") == {ALICE: OWNER}
        assert not space_store.space_exists(cursor, "fresh")  # what the same write did before goes with it


def test_an_update_replaces_the_message_and_the_etag(database: Database) -> None:
    _create(database, _space("notes"))
    changed = _space("notes")
    changed.description = "what we keep"
    changed.etag = "notes-2"
    database.write(lambda cursor: space_store.update_space(cursor, "notes", changed))
    assert _read(database, "notes") == changed
    with database.read() as cursor:
        assert space_store.space_etag(cursor, "notes") == "notes-2"


def test_cube_counts_leave_out_what_has_expired(database: Database) -> None:
    _create(database, _space("a"), _space("b"))
    insert_cubes(
        database,
        [
            cube_row("a", "forever", created=T0),
            cube_row("a", "until-two", created=T0, expires=T0 + 2 * HOUR),
            cube_row("a", "gone", created=T0, expires=T0 + HOUR),
            cube_row("a", "stone", created=T0, expires=T0, state=cube_pb2.LIFECYCLE_STATE_EXPIRED),
            cube_row("b", "one", created=T0),
        ],
    )
    at = T0 + HOUR  # "gone" expires at this very moment: no longer live
    with database.read() as cursor:
        assert space_store.live_cube_count(cursor, "a", at) == 2
        assert space_store.live_cube_count(cursor, "a", T0 + 3 * HOUR) == 1
        assert space_store.live_cube_count(cursor, "c", at) == 0
        counted = space_store.space_with_cube_count(cursor, "a", at)
        assert space_store.space_with_cube_count(cursor, "c", at) is None
        page = space_store.spaces_after(cursor, "", None, at, 10)
    assert counted is not None and counted.cube_count == 2
    assert [(space_id, space.name, space.cube_count) for space_id, space in page] == [
        ("a", "spaces/a", 2),
        ("b", "spaces/b", 1),
    ]


def test_spaces_page_in_id_order_and_by_member(database: Database) -> None:
    _create(database, _space("d", BOB), _space("a"), _space("c"), _space("b", BOB))
    with database.read() as cursor:

        def ids(after: str, member: str | None, limit: int) -> list[str]:
            return [space_id for space_id, _ in space_store.spaces_after(cursor, after, member, T0, limit)]

        assert ids("", None, 3) == ["a", "b", "c"]
        assert ids("b", None, 3) == ["c", "d"]
        assert ids("", BOB, 10) == ["b", "d"]
        assert ids("b", BOB, 10) == ["d"]
        assert ids("", CAROL, 10) == []


def test_roles_are_replaced_whole_under_a_new_policy_etag(database: Database) -> None:
    _create(database, _space("notes"))
    roles = {CAROL: VIEWER, BOB: OWNER, ALICE: EDITOR}
    database.write(lambda cursor: space_store.replace_roles(cursor, "notes", roles, "policy-2"))
    with database.read() as cursor:
        held = space_store.space_roles(cursor, "notes")
        assert space_store.policy_state(cursor, "notes") == space_store.PolicyState("policy-2", T0)
    assert list(held.items()) == [(BOB, OWNER), (ALICE, EDITOR), (CAROL, VIEWER)]  # highest role first


def test_a_principals_roles_go_everywhere_and_are_counted(database: Database) -> None:
    _create(database, _space("a"), _space("b", BOB))
    database.write(lambda cursor: space_store.replace_roles(cursor, "b", {BOB: OWNER, ALICE: VIEWER}, "b-policy"))
    assert database.write(lambda cursor: space_store.remove_roles_of(cursor, ALICE)) == 2
    with database.read() as cursor:
        assert space_store.space_roles(cursor, "a") == {}
        assert space_store.space_roles(cursor, "b") == {BOB: OWNER}
    assert database.write(lambda cursor: space_store.remove_roles_of(cursor, ALICE)) == 0


def test_the_spaces_a_principal_owns_alone(database: Database) -> None:
    _create(database, _space("shared"), _space("mine"), _space("theirs", BOB), _space("also-mine"))

    def apply(cursor: Connection) -> None:
        space_store.replace_roles(cursor, "shared", {ALICE: OWNER, BOB: OWNER}, "p1")
        space_store.replace_roles(cursor, "theirs", {BOB: OWNER, ALICE: EDITOR}, "p2")

    database.write(apply)
    with database.read() as cursor:
        assert space_store.spaces_owned_alone(cursor, ALICE) == ["also-mine", "mine"]
        assert space_store.spaces_owned_alone(cursor, BOB) == ["theirs"]
        assert space_store.spaces_owned_alone(cursor, CAROL) == []


def test_the_catalog_follows_committed_spaces_roles_and_principals() -> None:
    catalog = SearchCatalog()
    space = _space("notes")
    space.redaction_rules.add(sensitivity_label="secret", action=Rule.ACTION_WITHHOLD, audience=Rule.AUDIENCE_VIEWERS)
    space.redaction_rules.add(sensitivity_label="draft", action=Rule.ACTION_REDACT_TEXT, audience=Rule.AUDIENCE_EXPORT)
    space_store.space_created(catalog, "notes", ALICE, space)
    assert catalog.has_space("notes")
    assert catalog.role_of("notes", ALICE) == OWNER
    assert catalog.viewer_rules("notes") == {"secret": Rule.ACTION_WITHHOLD}  # export rules are not the viewers'

    del space.redaction_rules[:]
    space.redaction_rules.add(sensitivity_label="pii", action=Rule.ACTION_REDACT_TEXT, audience=Rule.AUDIENCE_VIEWERS)
    space_store.space_updated(catalog, "notes", space)
    assert catalog.viewer_rules("notes") == {"pii": Rule.ACTION_REDACT_TEXT}

    space_store.roles_committed(catalog, "notes", {BOB: OWNER, CAROL: VIEWER})
    assert [catalog.role_of("notes", p) for p in (ALICE, BOB, CAROL)] == [0, OWNER, VIEWER]  # 0: no role

    space_store.principal_removed(catalog, CAROL)
    assert catalog.role_of("notes", CAROL) == 0
    assert catalog.role_of("notes", BOB) == OWNER
    assert catalog.role_of("other", BOB) is None  # no such space
