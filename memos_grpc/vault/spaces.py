"""Spaces: create, get, list and delete the containers cubes live in."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import access_pb2, space_pb2
from memos_grpc.errors import AlreadyExistsError, EtagMismatchError, FailedPreconditionError, NotFoundError
from memos_grpc.store import spaces as space_store
from memos_grpc.store.database import Connection
from memos_grpc.store.interface import CubeWrite
from memos_grpc.store.names import check_id, parse_space_name, space_name
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.store.removal import Removed
from memos_grpc.store.rows import make_etag, set_timestamp
from memos_grpc.vault.context import VaultContext
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
        created = space_pb2.Space(
            name=space_name(space_id),
            display_name=space.display_name,
            description=space.description,
            labels=dict(space.labels),
            vector_dimension=self._context.dimension,
            owner=owner,
        )
        if space.HasField("default_ttl"):
            created.default_ttl.CopyFrom(space.default_ttl)
        created.redaction_rules.extend(checked_rules(space))
        set_timestamp(created.create_time, now)
        set_timestamp(created.update_time, now)
        created.etag = make_etag(created.name, 1, now)

        def apply(cursor: Connection) -> space_pb2.Space:
            try:
                space_store.insert_space(cursor, space_id, created, now, owner)
            except space_store.SpaceIdTaken as exc:
                raise AlreadyExistsError(
                    f"space {created.name} already exists", reason=reasons.SPACE_ALREADY_EXISTS
                ) from exc
            return created

        return self._context.database.write(
            apply, lambda _: space_store.space_created(self._context.catalog, space_id, owner, created)
        )

    def update(self, given: space_pb2.Space, paths: list[str]) -> space_pb2.Space:
        """Applies the masked fields of ``given`` to the space named by ``given.name`` (AIP-134)."""
        space_id = parse_space_name(given.name, "space.name")
        paths = check_update_mask(paths, SPACE_UPDATABLE)
        check_space_fields(given)
        rules = checked_rules(given)
        now = self._context.clock()

        def apply(cursor: Connection) -> space_pb2.Space:
            space = space_store.space_by_id(cursor, space_id)
            if space is None:
                raise NotFoundError(f"space {given.name} does not exist", reason=reasons.SPACE_NOT_FOUND)
            if given.etag and given.etag != space.etag:
                raise EtagMismatchError(
                    f"etag {given.etag!r} is stale for {given.name}; get the space again", reason=reasons.ETAG_MISMATCH
                )
            changes = space_pb2.Space()
            changes.CopyFrom(given)
            del changes.redaction_rules[:]
            changes.redaction_rules.extend(rules)
            field_mask_pb2.FieldMask(paths=paths).MergeMessage(
                changes, space, replace_message_field=True, replace_repeated_field=True
            )
            set_timestamp(space.update_time, now)
            space.etag = make_etag(space.name, int(now.timestamp() * 1e6), now)
            space_store.update_space(cursor, space_id, space)
            return space

        def after_commit(space: space_pb2.Space) -> None:
            space_store.space_updated(self._context.catalog, space_id, space)

        return self._context.database.write(apply, after_commit)

    def get(self, name: str) -> space_pb2.Space:
        space_id = parse_space_name(name)
        with self._context.database.read() as cursor:
            space = space_store.space_with_cube_count(cursor, space_id, self._context.clock())
        if space is None:
            raise NotFoundError(f"space {name} does not exist", reason=reasons.SPACE_NOT_FOUND)
        return space

    def list(self, requested_size: int, token: str, member: str | None) -> tuple[list[space_pb2.Space], str]:
        """A page of spaces in id order: all of them, or only those ``member`` holds a role in."""
        settings = self._context.settings
        size = page_size(requested_size, settings.default_page_size, settings.max_page_size)
        after = decode_token(token, "spaces", member or "") or ""
        with self._context.database.read() as cursor:
            rows = space_store.spaces_after(cursor, after, member, self._context.clock(), size + 1)
        spaces = [space for _, space in rows[:size]]
        next_token = encode_token(rows[size - 1][0], "spaces", member or "") if len(rows) > size else ""
        return spaces, next_token

    def delete(self, name: str, *, force: bool, etag: str) -> None:
        space_id = parse_space_name(name)
        context = self._context

        def change(write: CubeWrite) -> Removed:
            current = space_store.space_etag(write.cursor, space_id)
            if current is None:
                raise NotFoundError(f"space {name} does not exist", reason=reasons.SPACE_NOT_FOUND)
            if etag and etag != current:
                raise EtagMismatchError(
                    f"etag {etag!r} is stale for {name}; get the space again", reason=reasons.ETAG_MISMATCH
                )
            # Expired cubes and their tombstones do not keep a space from being deleted: no call could remove them.
            count = space_store.live_cube_count(write.cursor, space_id, write.now)
            if count and not force:
                raise FailedPreconditionError(
                    f"space {name} holds {count} cubes; delete them first or pass force",
                    reason=reasons.SPACE_NOT_EMPTY,
                )
            return write.remove_space(space_id)

        context.cube_store.write(change, context.clock())

    # -- access policy -----------------------------------------------------------

    def get_policy(self, resource: str) -> access_pb2.AccessPolicy:
        space_id = parse_space_name(resource, "resource")
        with self._context.database.read() as cursor:
            state = space_store.policy_state(cursor, space_id)
            if state is None:
                raise NotFoundError(f"space {resource} does not exist", reason=reasons.SPACE_NOT_FOUND)
            roles = space_store.space_roles(cursor, space_id)
        return policy_message(resource, roles, _policy_etag(resource, state))

    def set_policy(self, resource: str, policy: access_pb2.AccessPolicy, known: set[str]) -> access_pb2.AccessPolicy:
        """Replaces the roles of a space; ``known`` are the principal names that exist."""
        space_id = parse_space_name(resource, "resource")
        roles = roles_of(policy, known)
        now = self._context.clock()

        def apply(cursor: Connection) -> access_pb2.AccessPolicy:
            state = space_store.policy_state(cursor, space_id)
            if state is None:
                raise NotFoundError(f"space {resource} does not exist", reason=reasons.SPACE_NOT_FOUND)
            if policy.etag and policy.etag != _policy_etag(resource, state):
                raise EtagMismatchError(
                    f"the access policy of {resource} changed since it was read; get it again",
                    reason=reasons.ETAG_MISMATCH,
                )
            etag = make_etag(resource + "/policy", len(roles), now)
            space_store.replace_roles(cursor, space_id, roles, etag)
            return policy_message(resource, roles, etag)

        return self._context.database.write(
            apply, lambda _: space_store.roles_committed(self._context.catalog, space_id, roles)
        )


def _policy_etag(resource: str, state: space_store.PolicyState) -> str:
    """The etag of a space's access policy; before its first SetAccessPolicy, one derived from the space's
    creation, so that the first change can be conditional too."""
    return state.etag or make_etag(resource + "/policy", 0, state.create_time)


#: Longest default TTL, 1000 years: far enough for any retention rule, near enough to stay a datetime.
MAX_TTL_SECONDS = 1000 * 31_557_600

SPACE_UPDATABLE = frozenset({"display_name", "description", "labels", "default_ttl", "redaction_rules"})


def check_space_fields(space: space_pb2.Space) -> None:
    if len(space.display_name) > MAX_DISPLAY_NAME:
        raise invalid(f"space.display_name is longer than {MAX_DISPLAY_NAME} characters", reasons.FIELD_TOO_LONG)
    if len(space.description) > MAX_DESCRIPTION:
        raise invalid(f"space.description is longer than {MAX_DESCRIPTION} characters", reasons.FIELD_TOO_LONG)
    check_labels(dict(space.labels))
    if space.HasField("default_ttl"):
        ttl = space.default_ttl
        # Checked on the raw fields: a huge duration overflows timedelta and, added to a creation time, datetime.
        if not 0 <= ttl.nanos < 1_000_000_000 or not 1 <= ttl.seconds <= MAX_TTL_SECONDS:
            raise invalid(
                f"space.default_ttl must be between 1 second and {MAX_TTL_SECONDS // 31_557_600} years",
                reasons.INVALID_TTL,
            )


def checked_rules(space: space_pb2.Space) -> list[space_pb2.RedactionRule]:
    rules = list(space.redaction_rules)
    if len(rules) > 64:
        raise invalid("space.redaction_rules has more than 64 rules", reasons.INVALID_REDACTION_RULE)
    for index, rule in enumerate(rules):
        if not 1 <= len(rule.sensitivity_label) <= 64:
            raise invalid(
                f"space.redaction_rules[{index}].sensitivity_label must be 1..64 characters",
                reasons.INVALID_REDACTION_RULE,
            )
        if rule.action not in (space_pb2.RedactionRule.ACTION_WITHHOLD, space_pb2.RedactionRule.ACTION_REDACT_TEXT):
            raise invalid(
                f"space.redaction_rules[{index}].action must be WITHHOLD or REDACT_TEXT", reasons.INVALID_REDACTION_RULE
            )
        if rule.audience not in (space_pb2.RedactionRule.AUDIENCE_VIEWERS, space_pb2.RedactionRule.AUDIENCE_EXPORT):
            raise invalid(
                f"space.redaction_rules[{index}].audience must be VIEWERS or EXPORT", reasons.INVALID_REDACTION_RULE
            )
    return rules


def roles_of(policy: access_pb2.AccessPolicy, known: set[str]) -> dict[str, int]:
    """Each member's highest role; refuses unknown roles, unknown principals and a policy without an owner."""
    roles: dict[str, int] = {}
    for index, binding in enumerate(policy.bindings):
        if binding.role not in (access_pb2.ROLE_VIEWER, access_pb2.ROLE_EDITOR, access_pb2.ROLE_OWNER):
            raise invalid(f"policy.bindings[{index}].role must be VIEWER, EDITOR or OWNER", reasons.INVALID_ROLE)
        for member in binding.members:
            if member not in known:
                raise invalid(
                    f"policy.bindings[{index}] names {member[:120]!r}, which is no principal", reasons.UNKNOWN_MEMBER
                )
            roles[member] = max(roles.get(member, 0), binding.role)
    if access_pb2.ROLE_OWNER not in roles.values():
        raise invalid("the policy must keep at least one OWNER", reasons.NO_OWNER)
    return roles


def policy_message(resource: str, roles: dict[str, int], etag: str) -> access_pb2.AccessPolicy:
    policy = access_pb2.AccessPolicy(resource=resource, etag=etag)
    for role in (access_pb2.ROLE_OWNER, access_pb2.ROLE_EDITOR, access_pb2.ROLE_VIEWER):
        members = sorted(p for p, r in roles.items() if r == role)
        if members:
            policy.bindings.add(role=role, members=members)
    return policy
