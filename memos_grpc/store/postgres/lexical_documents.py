"""BM25 documents in PostgreSQL (migration 0004): written and deleted inside the store's write transactions.

A document is a live cube's text under its vector label, as the embedded backend's tantivy index holds it
(``store/lexical.py``), split by PostgreSQL's ``to_tsvector('english', ...)`` into lexemes (lower case, Snowball
stemming, English stop words left out): a posting per lexeme with its count (tf, from its positions), and the
document's length (the sum of the counts). Each change keeps the space's document count and summed length in
step, so a query (``lexical_search.py``) reads its terms' postings and one row of statistics.

``PgCursor`` calls these for the store's cube writes (``Cursor.lexical_put``, ``lexical_remove``,
``lexical_drop``); they run in the caller's transaction and commit or roll back with the cube rows.

PostgreSQL bounds a ``tsvector`` (1 MB; 256 positions per lexeme; positions up to 16,383), and a text past the
size bound would fail the write. So a document holds the first ``TEXT_BYTES`` of its text (UTF-8, cut at a
character): at most 64 KiB makes a ``tsvector`` of a few hundred KB however the text is made. Within that, a
lexeme counts at most 255 times, and words past the 16,383rd position share that last position (each lexeme
counts once there); a word longer than 2,047 bytes is not indexed.
"""

from __future__ import annotations

from collections.abc import Iterable

from memos_grpc.store.cursor import Cursor

#: The text search configuration documents and queries are split by.
CONFIG = "english"
#: How much of a text (UTF-8 bytes) its document holds: far below the 1 MB a ``tsvector`` may take.
TEXT_BYTES = 65_536

#: The documents of one space from parallel arrays of labels and texts: postings, rows and statistics.
_INSERT = f"""
WITH lexemes AS (
    SELECT d.label, v.lexeme AS term, cardinality(v.positions) AS tf
    FROM unnest(CAST(? AS BIGINT[]), CAST(? AS TEXT[])) AS d(label, body), unnest(to_tsvector('{CONFIG}', d.body)) AS v
), docs AS (
    SELECT label, sum(tf) AS length FROM lexemes GROUP BY label
), postings AS (
    INSERT INTO lexical_postings (space_id, term, label, tf, length)
    SELECT ?, l.term, l.label, l.tf, d.length FROM lexemes l JOIN docs d ON d.label = l.label
), rows AS (
    INSERT INTO lexical_docs (space_id, label, length) SELECT ?, label, length FROM docs
), terms AS (
    INSERT INTO lexical_terms (space_id, term, df) SELECT ?, term, count(*) FROM lexemes GROUP BY term
    ON CONFLICT (space_id, term) DO UPDATE SET df = lexical_terms.df + excluded.df
)
INSERT INTO lexical_spaces (space_id, doc_count, total_length)
SELECT ?, count(*), coalesce(sum(length), 0) FROM docs HAVING count(*) > 0
ON CONFLICT (space_id) DO UPDATE SET doc_count = lexical_spaces.doc_count + excluded.doc_count,
    total_length = lexical_spaces.total_length + excluded.total_length
"""

#: Deletes documents' rows by label and takes them out of the space's statistics; returns how many went.
_REMOVE = """
WITH gone AS (
    DELETE FROM lexical_docs WHERE space_id = ? AND label = ANY(CAST(? AS BIGINT[])) RETURNING length
), counted AS (
    SELECT count(*) AS n, coalesce(sum(length), 0) AS total FROM gone
), statistics AS (
    UPDATE lexical_spaces s SET doc_count = s.doc_count - c.n, total_length = s.total_length - c.total
    FROM counted c WHERE s.space_id = ? AND c.n > 0
)
SELECT n FROM counted
"""

#: Deletes documents' postings and lowers their terms' document frequencies; returns the terms left in none.
_UNPOST = """
WITH gone AS (
    DELETE FROM lexical_postings WHERE label = ANY(CAST(? AS BIGINT[])) AND space_id = ? RETURNING term
), counted AS (
    SELECT term, count(*) AS n FROM gone GROUP BY term
), lowered AS (
    UPDATE lexical_terms t SET df = t.df - c.n FROM counted c WHERE t.space_id = ? AND t.term = c.term
    RETURNING t.term, t.df
)
SELECT term FROM lowered WHERE df = 0
"""


def indexed_text(text: str) -> str:
    """The part of ``text`` a document holds: its first ``TEXT_BYTES`` of UTF-8, cut at a character, with each NUL
    (which PostgreSQL's text cannot hold) as a space."""
    if "\x00" in text:
        text = text.replace("\x00", " ")
    if len(text) * 4 <= TEXT_BYTES:  # no character takes more than 4 bytes
        return text
    return text.encode()[:TEXT_BYTES].decode(errors="ignore")


def put_documents(cursor: Cursor, space_id: str, documents: Iterable[tuple[int, str | None]]) -> None:
    """Writes the documents of a space's cubes by label, replacing what each label had; a label whose text is None
    or empty has no document (its old one goes)."""
    documents = list(documents)
    if not documents:
        return
    remove_documents(cursor, space_id, [label for label, _ in documents])
    texts = [(label, indexed_text(text)) for label, text in documents if text]
    if texts:
        labels, bodies = zip(*texts, strict=True)
        cursor.execute(_INSERT, [list(labels), list(bodies), space_id, space_id, space_id, space_id])


def remove_documents(cursor: Cursor, space_id: str, labels: Iterable[int]) -> None:
    """Deletes the documents of those labels in the space (labels without one are passed over)."""
    labels = list(labels)
    if not labels:
        return
    found = cursor.execute(_REMOVE, [space_id, labels, space_id]).fetchone()
    if found is None or not found[0]:
        return
    emptied = cursor.execute(_UNPOST, [labels, space_id, space_id]).fetchall()
    if emptied:
        cursor.execute(
            "DELETE FROM lexical_terms WHERE space_id = ? AND term = ANY(CAST(? AS TEXT[])) AND df = 0",
            [space_id, [term for (term,) in emptied]],
        )


def drop_documents(cursor: Cursor, space_id: str) -> None:
    """Deletes every document of a space and its statistics (the space is removed)."""
    cursor.execute("DELETE FROM lexical_postings WHERE space_id = ?", [space_id])
    cursor.execute("DELETE FROM lexical_docs WHERE space_id = ?", [space_id])
    cursor.execute("DELETE FROM lexical_terms WHERE space_id = ?", [space_id])
    cursor.execute("DELETE FROM lexical_spaces WHERE space_id = ?", [space_id])
