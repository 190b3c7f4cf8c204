"""BM25 in SQL on the PostgreSQL backend: the search catalog's lexical index, answered by the database.

The documents are written in the transactions that write and remove cubes (``lexical_documents.py``), so every
server sharing the database ranks by the same documents from the moment a write commits, and nothing is kept in
memory: ``PgLexicalIndex`` takes the catalog's changes as the embedded backend's ``LexicalIndex`` does, and does
nothing with them. A search splits the query as documents are split (``to_tsvector('english', ...)``; a lexeme
repeated in the query counts once) and scores each matching document of the space by BM25, as tantivy does:

    score = sum over query terms t in the document of  idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))

with k1 = 1.2, b = 0.75, N the space's documents, df those holding t, dl the document's length and avgdl the
space's average, all in lexemes (a text without any lexeme is no document). ``fill_pending`` writes the documents
of a database that held cubes before the documents existed (migration 0004).
"""

from __future__ import annotations

import logging
from functools import partial

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.cursor import Cursor
from memos_grpc.store.lexical import lexical_text
from memos_grpc.store.postgres.database import PostgresDatabase
from memos_grpc.store.postgres.lexical_documents import CONFIG, indexed_text, put_documents

log = logging.getLogger(__name__)

#: BM25's term-frequency saturation and length normalization, tantivy's and Lucene's defaults.
K1 = 1.2
B = 0.75

#: The space's statistics, each query term's weight (idf times k1 + 1) from its document frequency, and every
#: posting of those terms summed per document; the best first, ties by label.
_SEARCH = f"""
WITH terms AS MATERIALIZED (
    SELECT t.space_id, t.term,
        ln(1 + (s.doc_count - t.df + 0.5) / (t.df + 0.5)) * CAST({K1 + 1!r} AS DOUBLE PRECISION) AS weight,
        CAST({K1 * (1 - B)!r} AS DOUBLE PRECISION) AS saturation,
        CAST({K1 * B!r} AS DOUBLE PRECISION) * s.doc_count / s.total_length AS per_length
    FROM lexical_spaces s JOIN lexical_terms t ON t.space_id = s.space_id
    WHERE s.space_id = ? AND s.doc_count > 0 AND t.df > 0
        AND t.term IN (SELECT lexeme FROM unnest(to_tsvector('{CONFIG}', ?)))
)
SELECT p.label, sum(t.weight * p.tf / (p.tf + t.saturation + t.per_length * p.length)) AS score
FROM terms t JOIN lexical_postings p ON p.space_id = t.space_id AND p.term = t.term
GROUP BY p.label ORDER BY score DESC, p.label LIMIT ?
"""

#: The meta key migration 0004 sets on a database that held cubes: their documents are still to be written.
PENDING = "lexical_pending"
#: Cubes read, and their documents written, per transaction while ``fill_pending`` runs.
_FILL_BATCH = 1000


class PgLexicalIndex:
    """BM25 over the database's documents, per space, with ``LexicalIndex``'s interface (``store/lexical.py``).

    Changes come through the write transactions, not through this object: ``put``, ``remove``, ``drop_space``
    and ``refresh`` do nothing, and a search sees every committed write of every server.
    """

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    def put(self, space_id: str, label: int, text: str) -> None:
        """Nothing: the transaction that wrote the cube wrote its document."""

    def remove(self, labels: list[int]) -> None:
        """Nothing: the transaction that removed the cubes deleted their documents."""

    def drop_space(self, space_id: str) -> None:
        """Nothing: the transaction that removed the space deleted its documents."""

    def refresh(self) -> None:
        """Nothing: a committed document is searchable at once."""

    def close(self) -> None:
        """Nothing: searches borrow the database's pooled connections."""

    def search(self, space_id: str, text: str, limit: int) -> list[tuple[int, float]]:
        """Up to ``limit`` (label, BM25 score) pairs of the space for the lexemes of ``text``, best first."""
        if limit <= 0 or not text.strip():
            return []
        with self._database.read() as cursor:
            rows = cursor.execute(_SEARCH, [space_id, indexed_text(text), limit]).fetchall()
        return [(int(label), float(score)) for label, score in rows]


def fill_pending(database: PostgresDatabase) -> int:
    """Writes the documents of every stored cube with a vector label, if migration 0004 found cubes without
    them; returns how many cubes were read (0 when nothing was pending, or another server did it first).

    A batch of cubes per transaction, each under the write lock like any write, so servers already serving the
    database wait for one batch at a time; a write between two batches writes its own documents, and a run cut
    short is done again, in full, by the next server to open the database.
    """
    with database.read() as cursor:
        if not _pending(cursor):
            return 0
    log.info("writing the BM25 documents of the cubes stored before them")
    with database.read() as cursor:
        spaces = [str(space_id) for (space_id,) in cursor.execute("SELECT space_id FROM spaces").fetchall()]
    filled = 0
    for space_id in spaces:
        after = 0
        while True:
            read = database.write(partial(_fill_batch, space_id=space_id, after=after))
            if read is None:
                break
            after, count = read
            filled += count
    database.write(_filled)
    log.info("wrote the BM25 documents of %d cubes", filled)
    return filled


def _filled(cursor: Cursor) -> None:
    cursor.execute("DELETE FROM meta WHERE key = ?", [PENDING])


def _pending(cursor: Cursor) -> bool:
    return cursor.execute("SELECT 1 FROM meta WHERE key = ?", [PENDING]).fetchone() is not None


def _fill_batch(cursor: Cursor, space_id: str, after: int) -> tuple[int, int] | None:
    """Writes the documents of the space's next cubes by label after ``after``: (the last label, how many), or
    None when there are no more (or another server has written them all meanwhile)."""
    if not _pending(cursor):
        return None
    rows = cursor.execute(
        "SELECT vec_id, cube_pb FROM cubes WHERE space_id = ? AND vec_id > ? ORDER BY vec_id LIMIT ?",
        [space_id, after, _FILL_BATCH],
    ).fetchall()
    if not rows:
        return None
    put_documents(
        cursor,
        space_id,
        [(int(label), lexical_text(cube_pb2.MemCube.FromString(bytes(cube_pb)))) for label, cube_pb in rows],
    )
    return int(rows[-1][0]), len(rows)
