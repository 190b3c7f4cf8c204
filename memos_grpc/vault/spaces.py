"""Spaces: create, get, list and delete the containers cubes live in."""

from __future__ import annotations

from typing import Any

import duckdb
from google.protobuf import field_mask_pb2

from memos_grpc._proto.memos.v1 import access_pb2, space_pb2
from memos_grpc.errors import AlreadyExistsError, EtagMismatchError, FailedPreconditionError, NotFoundError
from memos_grpc.store.catalog import viewer_rules
from memos_grpc.store.database import Connection
from memos_grpc.store.names import check_id, parse_space_name, space_name
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.store.removal import Removed, forget_removed, remove_space
from memos_grpc.store.rows import make_etag, set_timestamp
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.cubes import LIVE
from memos_grpc.vault.validation import check_labels, check_update_mask, invalid

MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 2000


class Spaces:
    """Spaces, the containers cubes live in: create, get, list, update and delete, with their roles and access policy.

    Commits through the database's writer and keeps the search catalog's roles and redaction rules in step.
    Whether a caller may do any of this is decided before, in the policy enforcement point.
    """

    def __init__(self, context: VaultContext) -> None:
        self._context = context

    def create(self, space_id: str, space: space_pb2.Space, owner: str) -> space_pb2.Space:
        """Creates a space owned by ``owner`` (a principal name)."""
        check_id(space_id, "space_id")
        check_space_fields(space)
        now = self._context.clock()
        stored = space_pb2.Space(
            name=space_name(space_id),
            display_name=space.display_name,
            description=space.description,
            labels=dict(space.labels),
            vector_dimension=self._context.dimension,
            owner=owner,
        )
        if space.HasField("default_ttl"):
            stored.default_ttl.CopyFrom(space.default_ttl)
        stored.redaction_rules.extend(checked_rules(space))
        set_timestamp(stored.create_time, now)
        set_timestamp(stored.update_time, now)
        stored.etag = make_etag(stored.name, 1, now)

        def apply(cursor: Connection) -> space_pb2.Space:
            try:
                cursor.execute(
                    "INSERT INTO spaces (space_id, space_pb, create_time, etag, owner) VALUES (?, ?, ?, ?, ?)",
                    [space_id, stored.SerializeToString(), now, stored.etag, owner],
                )
                cursor.execute("INSERT INTO space_roles VALUES (?, ?, ?)", [space_id, owner, access_pb2.ROLE_OWNER])
            except duckdb.ConstraintException as exc:
                raise AlreadyExistsError(f"space {stored.name} already exists", reason="SPACE_ALREADY_EXISTS") from exc
            return stored

        return self._context.database.write(
            apply,
            lambda _: self._context.catalog.add_space(space_id, {owner: access_pb2.ROLE_OWNER}, viewer_rules(stored)),
        )

    def update(self, given: space_pb2.Space, paths: list[str]) -> space_pb2.Space:
        """Applies the masked fields of ``given`` to the space named by ``given.name`` (AIP-134)."""
        space_id = parse_space_name(given.name, "space.name")
        paths = check_update_mask(paths, SPACE_UPDATABLE)
        check_space_fields(given)
        rules = checked_rules(given)
        now = self._context.clock()

        def apply(cursor: Connection) -> space_pb2.Space:
            row = cursor.execute("SELECT space_pb FROM spaces WHERE space_id = ?", [space_id]).fetchone()
            if row is None:
                raise NotFoundError(f"space {given.name} does not exist", reason="SPACE_NOT_FOUND")
            stored = space_pb2.Space.FromString(row[0])
            if given.etag and given.etag != stored.etag:
                raise EtagMismatchError(
                    f"etag {given.etag!r} is stale for {given.name}; get the space again", reason="ETAG_MISMATCH"
                )
            changes = space_pb2.Space()
            changes.CopyFrom(given)
            del changes.redaction_rules[:]
            changes.redaction_rules.extend(rules)
            field_mask_pb2.FieldMask(paths=paths).MergeMessage(
                changes, stored, replace_message_field=True, replace_repeated_field=True
            )
            set_timestamp(stored.update_time, now)
            stored.etag = make_etag(stored.name, int(now.timestamp() * 1e6), now)
            cursor.execute(
                "UPDATE spaces SET space_pb = ?, etag = ? WHERE space_id = ?",
                [stored.SerializeToString(), stored.etag, space_id],
            )
            return stored

        def after_commit(stored: space_pb2.Space) -> None:
            self._context.catalog.set_viewer_rules(space_id, viewer_rules(stored))

        return self._context.database.write(apply, after_commit)

    def get(self, name: str) -> space_pb2.Space:
        space_id = parse_space_name(name)
        with self._context.database.read() as cursor:
            row = cursor.execute(
                f"SELECT space_pb, (SELECT count(*) FROM cubes WHERE space_id = ? AND {LIVE}) "
                "FROM spaces WHERE space_id = ?",
                [space_id, self._context.clock(), space_id],
            ).fetchone()
        if row is None:
            raise NotFoundError(f"space {name} does not exist", reason="SPACE_NOT_FOUND")
        space = space_pb2.Space.FromString(row[0])
        space.cube_count = int(row[1])
        return space

    def list(self, requested_size: int, token: str, member: str | None) -> tuple[list[space_pb2.Space], str]:
        """A page of spaces in id order: all of them, or only those ``member`` holds a role in."""
        settings = self._context.settings
        size = page_size(requested_size, settings.default_page_size, settings.max_page_size)
        after = decode_token(token, "spaces", member or "") or ""
        with self._context.database.read() as cursor:
            rows = cursor.execute(
                "SELECT s.space_id, s.space_pb, "
                f"(SELECT count(*) FROM cubes c WHERE c.space_id = s.space_id AND {LIVE}) "
                "FROM spaces s WHERE s.space_id > ? AND (CAST(? AS VARCHAR) IS NULL OR EXISTS ("
                "SELECT 1 FROM space_roles r WHERE r.space_id = s.space_id AND r.principal = ?)) "
                "ORDER BY s.space_id LIMIT ?",
                [self._context.clock(), after, member, member, size + 1],
            ).fetchall()
        spaces = []
        for _, blob, count in rows[:size]:
            space = space_pb2.Space.FromString(blob)
            space.cube_count = int(count)
            spaces.append(space)
        next_token = encode_token(rows[size - 1][0], "spaces", member or "") if len(rows) > size else ""
        return spaces, next_token

    def delete(self, name: str, *, force: bool, etag: str) -> None:
        space_id = parse_space_name(name)
        context = self._context

        def apply(cursor: Connection) -> Removed:
            row = cursor.execute("SELECT etag FROM spaces WHERE space_id = ?", [space_id]).fetchone()
            if row is None:
                raise NotFoundError(f"space {name} does not exist", reason="SPACE_NOT_FOUND")
            if etag and etag != row[0]:
                raise EtagMismatchError(
                    f"etag {etag!r} is stale for {name}; get the space again", reason="ETAG_MISMATCH"
                )
            # Expired cubes and their tombstones do not keep a space from being deleted: no call could remove them.
            count = cursor.execute(
                f"SELECT count(*) FROM cubes WHERE space_id = ? AND {LIVE}", [space_id, self._context.clock()]
            ).fetchone()
            if count and count[0] and not force:
                raise FailedPreconditionError(
                    f"space {name} holds {count[0]} cubes; delete them first or pass force",
                    reason="SPACE_NOT_EMPTY",
                )
            return remove_space(cursor, space_id)

        context.database.write(apply, lambda removed: forget_removed(context.store, removed))

    # -- access policy -----------------------------------------------------------

    def get_policy(self, resource: str) -> access_pb2.AccessPolicy:
        space_id = parse_space_name(resource, "resource")
        with self._context.database.read() as cursor:
            row = cursor.execute(
                "SELECT policy_etag, create_time FROM spaces WHERE space_id = ?", [space_id]
            ).fetchone()
            if row is None:
                raise NotFoundError(f"space {resource} does not exist", reason="SPACE_NOT_FOUND")
            roles = cursor.execute(
                "SELECT principal, role FROM space_roles WHERE space_id = ? ORDER BY role DESC, principal", [space_id]
            ).fetchall()
        return policy_message(resource, {str(p): int(r) for p, r in roles}, _policy_etag(resource, row))

    def set_policy(self, resource: str, policy: access_pb2.AccessPolicy, known: set[str]) -> access_pb2.AccessPolicy:
        """Replaces the roles of a space; ``known`` are the principal names that exist."""
        space_id = parse_space_name(resource, "resource")
        roles = roles_of(policy, known)
        now = self._context.clock()

        def apply(cursor: Connection) -> access_pb2.AccessPolicy:
            row = cursor.execute(
                "SELECT policy_etag, create_time FROM spaces WHERE space_id = ?", [space_id]
            ).fetchone()
            if row is None:
                raise NotFoundError(f"space {resource} does not exist", reason="SPACE_NOT_FOUND")
            if policy.etag and policy.etag != _policy_etag(resource, row):
                raise EtagMismatchError(
                    f"the access policy of {resource} changed since it was read; get it again", reason="ETAG_MISMATCH"
                )
            etag = make_etag(resource + "/policy", len(roles), now)
            cursor.execute("DELETE FROM space_roles WHERE space_id = ?", [space_id])
            for principal, role in roles.items():
                cursor.execute("INSERT INTO space_roles VALUES (?, ?, ?)", [space_id, principal, role])
            cursor.execute("UPDATE spaces SET policy_etag = ? WHERE space_id = ?", [etag, space_id])
            return policy_message(resource, roles, etag)

        return self._context.database.write(apply, lambda _: self._context.catalog.set_roles(space_id, roles))


def _policy_etag(resource: str, row: tuple[Any, ...]) -> str:
    """The etag of a space's access policy; before its first SetAccessPolicy, one derived from the space's
    creation, so that the first change can be conditional too."""
    stored, create_time = row
    return str(stored) if stored else make_etag(resource + "/policy", 0, create_time)


#: Longest default TTL, 1000 years: far enough for any retention rule, near enough to stay a datetime.
MAX_TTL_SECONDS = 1000 * 31_557_600

SPACE_UPDATABLE = frozenset({"display_name", "description", "labels", "default_ttl", "redaction_rules"})


def check_space_fields(space: space_pb2.Space) -> None:
    if len(space.display_name) > MAX_DISPLAY_NAME:
        raise invalid(f"space.display_name is longer than {MAX_DISPLAY_NAME} characters", "FIELD_TOO_LONG")
    if len(space.description) > MAX_DESCRIPTION:
        raise invalid(f"space.description is longer than {MAX_DESCRIPTION} characters", "FIELD_TOO_LONG")
    check_labels(dict(space.labels))
    if space.HasField("default_ttl"):
        ttl = space.default_ttl
        # Checked on the raw fields: a huge duration overflows timedelta and, added to a creation time, datetime.
        if not 0 <= ttl.nanos < 1_000_000_000 or not 1 <= ttl.seconds <= MAX_TTL_SECONDS:
            raise invalid(
                f"space.default_ttl must be between 1 second and {MAX_TTL_SECONDS // 31_557_600} years", "INVALID_TTL"
            )


def checked_rules(space: space_pb2.Space) -> list[space_pb2.RedactionRule]:
    rules = list(space.redaction_rules)
    if len(rules) > 64:
        raise invalid("space.redaction_rules has more than 64 rules", "INVALID_REDACTION_RULE")
    for index, rule in enumerate(rules):
        if not 1 <= len(rule.sensitivity_label) <= 64:
            raise invalid(
                f"space.redaction_rules[{index}].sensitivity_label must be 1..64 characters", "INVALID_REDACTION_RULE"
            )
        if rule.action not in (space_pb2.RedactionRule.ACTION_WITHHOLD, space_pb2.RedactionRule.ACTION_REDACT_TEXT):
            raise invalid(
                f"space.redaction_rules[{index}].action must be WITHHOLD or REDACT_TEXT", "INVALID_REDACTION_RULE"
            )
        if rule.audience not in (space_pb2.RedactionRule.AUDIENCE_VIEWERS, space_pb2.RedactionRule.AUDIENCE_EXPORT):
            raise invalid(
                f"space.redaction_rules[{index}].audience must be VIEWERS or EXPORT", "INVALID_REDACTION_RULE"
            )
    return rules


def roles_of(policy: access_pb2.AccessPolicy, known: set[str]) -> dict[str, int]:
    """Each member's highest role; refuses unknown roles, unknown principals and a policy without an owner."""
    roles: dict[str, int] = {}
    for index, binding in enumerate(policy.bindings):
        if binding.role not in (access_pb2.ROLE_VIEWER, access_pb2.ROLE_EDITOR, access_pb2.ROLE_OWNER):
            raise invalid(f"policy.bindings[{index}].role must be VIEWER, EDITOR or OWNER", "INVALID_ROLE")
        for member in binding.members:
            if member not in known:
                raise invalid(
                    f"policy.bindings[{index}] names {member[:120]!r}, which is no principal", "UNKNOWN_MEMBER"
                )
            roles[member] = max(roles.get(member, 0), binding.role)
    if access_pb2.ROLE_OWNER not in roles.values():
        raise invalid("the policy must keep at least one OWNER", "NO_OWNER")
    return roles


def policy_message(resource: str, roles: dict[str, int], etag: str) -> access_pb2.AccessPolicy:
    policy = access_pb2.AccessPolicy(resource=resource, etag=etag)
    for role in (access_pb2.ROLE_OWNER, access_pb2.ROLE_EDITOR, access_pb2.ROLE_VIEWER):
        members = sorted(p for p, r in roles.items() if r == role)
        if members:
            policy.bindings.add(role=role, members=members)
    return policy
