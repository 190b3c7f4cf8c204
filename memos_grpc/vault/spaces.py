"""Spaces: create, get, list and delete the containers cubes live in."""

from __future__ import annotations

import duckdb

from memos_grpc._proto.memos.v1 import space_pb2
from memos_grpc.errors import AlreadyExistsError, EtagMismatchError, FailedPreconditionError, NotFoundError
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.database import Connection
from memos_grpc.vault.names import check_id, parse_space_name, space_name
from memos_grpc.vault.paging import decode_token, encode_token, page_size
from memos_grpc.vault.rows import make_etag, set_timestamp
from memos_grpc.vault.validation import check_labels, invalid

MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 2000


class Spaces:
    def __init__(self, context: VaultContext) -> None:
        self._context = context

    def create(self, space_id: str, space: space_pb2.Space, owner: str) -> space_pb2.Space:
        """Creates a space owned by ``owner`` (a principal name)."""
        check_id(space_id, "space_id")
        if len(space.display_name) > MAX_DISPLAY_NAME:
            raise invalid(f"space.display_name is longer than {MAX_DISPLAY_NAME} characters", "FIELD_TOO_LONG")
        if len(space.description) > MAX_DESCRIPTION:
            raise invalid(f"space.description is longer than {MAX_DESCRIPTION} characters", "FIELD_TOO_LONG")
        check_labels(dict(space.labels))
        now = self._context.clock()
        stored = space_pb2.Space(
            name=space_name(space_id),
            display_name=space.display_name,
            description=space.description,
            labels=dict(space.labels),
            vector_dimension=self._context.dimension,
            owner=owner,
        )
        set_timestamp(stored.create_time, now)
        set_timestamp(stored.update_time, now)
        stored.etag = make_etag(stored.name, 1, now)

        def apply(cursor: Connection) -> space_pb2.Space:
            try:
                cursor.execute(
                    "INSERT INTO spaces (space_id, space_pb, create_time, etag, owner) VALUES (?, ?, ?, ?, ?)",
                    [space_id, stored.SerializeToString(), now, stored.etag, owner],
                )
            except duckdb.ConstraintException as exc:
                raise AlreadyExistsError(f"space {stored.name} already exists", reason="SPACE_ALREADY_EXISTS") from exc
            return stored

        return self._context.database.write(apply, lambda _: self._context.catalog.add_space(space_id, owner))

    def get(self, name: str) -> space_pb2.Space:
        space_id = parse_space_name(name)
        with self._context.database.read() as cursor:
            row = cursor.execute(
                "SELECT space_pb, (SELECT count(*) FROM cubes WHERE space_id = ?) FROM spaces WHERE space_id = ?",
                [space_id, space_id],
            ).fetchone()
        if row is None:
            raise NotFoundError(f"space {name} does not exist", reason="SPACE_NOT_FOUND")
        space = space_pb2.Space.FromString(row[0])
        space.cube_count = int(row[1])
        return space

    def list(self, requested_size: int, token: str, owner: str | None) -> tuple[list[space_pb2.Space], str]:
        """A page of spaces in id order: all of them, or only those ``owner`` owns."""
        settings = self._context.settings
        size = page_size(requested_size, settings.default_page_size, settings.max_page_size)
        after = decode_token(token, "spaces", owner or "") or ""
        with self._context.database.read() as cursor:
            rows = cursor.execute(
                "SELECT s.space_id, s.space_pb, (SELECT count(*) FROM cubes c WHERE c.space_id = s.space_id) "
                "FROM spaces s WHERE s.space_id > ? AND (? IS NULL OR s.owner = ?) ORDER BY s.space_id LIMIT ?",
                [after, owner, owner, size + 1],
            ).fetchall()
        spaces = []
        for _, blob, count in rows[:size]:
            space = space_pb2.Space.FromString(blob)
            space.cube_count = int(count)
            spaces.append(space)
        next_token = encode_token(rows[size - 1][0], "spaces", owner or "") if len(rows) > size else ""
        return spaces, next_token

    def delete(self, name: str, *, force: bool, etag: str) -> None:
        space_id = parse_space_name(name)
        context = self._context

        def apply(cursor: Connection) -> list[int]:
            row = cursor.execute("SELECT etag FROM spaces WHERE space_id = ?", [space_id]).fetchone()
            if row is None:
                raise NotFoundError(f"space {name} does not exist", reason="SPACE_NOT_FOUND")
            if etag and etag != row[0]:
                raise EtagMismatchError(
                    f"etag {etag!r} is stale for {name}; get the space again", reason="ETAG_MISMATCH"
                )
            vec_ids = [
                int(r[0])
                for r in cursor.execute(
                    "SELECT vec_id FROM cubes WHERE space_id = ? AND vec_id IS NOT NULL", [space_id]
                ).fetchall()
            ]
            count = cursor.execute("SELECT count(*) FROM cubes WHERE space_id = ?", [space_id]).fetchone()
            if count and count[0] and not force:
                raise FailedPreconditionError(
                    f"space {name} holds {count[0]} cubes; delete them first or pass force",
                    reason="SPACE_NOT_EMPTY",
                )
            cursor.execute("DELETE FROM cubes WHERE space_id = ?", [space_id])
            cursor.execute("DELETE FROM spaces WHERE space_id = ?", [space_id])
            return vec_ids

        def after_commit(_: list[int]) -> None:
            context.indexes.drop(space_id)
            context.catalog.drop_space(space_id)

        context.database.write(apply, after_commit)
