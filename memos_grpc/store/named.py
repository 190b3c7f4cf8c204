"""The rows of cubes named by id in one space, found through an index on either backend.

DuckDB 1.5 scans an index only for a predicate on one column. A condition on both key columns (``space_id = ?
AND cube_id = ?``) reads the whole table, though the two are its primary key: 2.4 ms at 100,000 cubes, and
growing with them. On DuckDB both cube tables therefore have an index on ``cube_id`` (``schema.py``), and the
statements here select by id below a LIMIT that no filter crosses, checking the space above it. A change finds
rowids that way and names them one statement each: one rowid is a point lookup (0.5 ms), a list of them is not
(1.6 to 2 ms). Past ``NAMED_MAX`` ids one scan of the table is cheaper, and the plain condition is used.
PostgreSQL uses its primary keys, and always gets the plain condition.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from memos_grpc.store.cursor import Cursor
from memos_grpc.store.database import IDS, id_list

#: Above any number of rows sharing one id across spaces (or versions): a LIMIT that keeps the scan an index scan.
_ANY_COUNT = 2**62
#: The most ids a statement finds through the index on DuckDB; more are found by one scan.
NAMED_MAX = 64


def one_row(cursor: Cursor, table: str) -> str:
    """``FROM`` and ``WHERE`` of the rows of ``table`` (``cubes``, ``cube_versions``) of one cube: parameters its id,
    then its space; more conditions follow with ``AND``. On DuckDB each row carries its rowid as ``row_id``."""
    if cursor.dialect == "duckdb":
        return (
            f"(SELECT rowid AS row_id, * FROM {table} WHERE cube_id = ? LIMIT {_ANY_COUNT}) AS {table} "
            "WHERE space_id = ?"
        )
    return f"{table} WHERE cube_id = ? AND space_id = ?"


def newest_versions(cursor: Cursor) -> str:
    """The versions of one cube, newest first, as ``(version, cube_pb)``: parameters its id, its space, a version
    that they are below (None for all) twice, and how many at most.

    DuckDB 1.5 plans an ``ORDER BY ... LIMIT`` over ``one_row``'s index scan as a sequential scan of the table
    (1.8 ms at 100,000 cubes, against 1.0): the rows are gathered in a materialized CTE first.
    """
    return (
        "WITH named AS MATERIALIZED (SELECT version, cube_pb FROM "
        f"{one_row(cursor, 'cube_versions')} AND (CAST(? AS BIGINT) IS NULL OR version < ?)) "
        "SELECT version, cube_pb FROM named ORDER BY version DESC LIMIT ?"
    )


def named_rows(cursor: Cursor, table: str, space_id: str, cube_ids: Collection[str]) -> tuple[str, list[object]]:
    """As ``one_row`` for the rows of those cubes of the space: the ``FROM`` and ``WHERE``, and their parameters.
    The rows carry ``row_id`` when ``through_index(cursor, len(cube_ids))``."""
    if through_index(cursor, len(cube_ids)):
        if len(cube_ids) == 1:
            return one_row(cursor, table), [next(iter(cube_ids)), space_id]
        where = f"(SELECT rowid AS row_id, * FROM {table} WHERE cube_id IN {IDS} LIMIT {_ANY_COUNT}) AS {table}"
        return f"{where} WHERE space_id = ?", [id_list(cube_ids), space_id]
    return f"{table} WHERE cube_id IN {IDS} AND space_id = ?", [id_list(cube_ids), space_id]


def through_index(cursor: Cursor, count: int) -> bool:
    """Whether ``named_rows`` of ``count`` ids goes through DuckDB's ``cube_id`` index (and has ``row_id``)."""
    return cursor.dialect == "duckdb" and count <= NAMED_MAX


def delete_named(cursor: Cursor, table: str, space_id: str, cube_ids: Collection[str]) -> None:
    """Deletes the rows of ``table`` of those cubes of the space, in the caller's transaction."""
    where, params = named_rows(cursor, table, space_id, cube_ids)
    if not through_index(cursor, len(cube_ids)):
        cursor.execute(f"DELETE FROM {where}", params)
        return
    found = cursor.execute(f"SELECT row_id FROM {where}", params).fetchall()
    delete_rowids(cursor, table, [row_id for (row_id,) in found])


def delete_rowids(cursor: Cursor, table: str, row_ids: Iterable[int]) -> None:
    """Deletes rows of ``table`` by the ``row_id`` that ``named_rows`` gave them on DuckDB, one statement each."""
    for row_id in row_ids:
        cursor.execute(f"DELETE FROM {table} WHERE rowid = ?", [row_id])
