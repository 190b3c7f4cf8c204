-- BM25 in the database (memos_grpc/store/postgres/lexical_documents.py, lexical_search.py): each live cube with a
-- vector label and text is one document of its space, written and deleted in the transaction that writes or
-- removes the cube, so every server sharing the database ranks by the same documents the moment they commit.
-- Statistics are per space: one tenant's documents never change another tenant's ranking.

-- A space's document count and summed length (the average length BM25 normalizes by), kept in step by every
-- change of its documents.
CREATE TABLE lexical_spaces (
    space_id TEXT PRIMARY KEY,
    doc_count BIGINT NOT NULL,
    total_length BIGINT NOT NULL
);

-- One row per document: its length, in lexemes (PostgreSQL's to_tsvector('english', ...): stemmed, stop words
-- left out), to take it out of the space's statistics again.
CREATE TABLE lexical_docs (
    space_id TEXT NOT NULL,
    label BIGINT NOT NULL,
    length INTEGER NOT NULL,
    PRIMARY KEY (space_id, label)
);

-- One row per (document, lexeme): the lexeme's count in the document (tf) and the document's length, so that a
-- query scores every posting of its terms from this index alone.
CREATE TABLE lexical_postings (
    space_id TEXT NOT NULL,
    term TEXT NOT NULL,
    label BIGINT NOT NULL,
    tf INTEGER NOT NULL,
    length INTEGER NOT NULL,
    PRIMARY KEY (space_id, term, label) INCLUDE (tf, length)
);
-- To delete a document's postings by its label.
CREATE INDEX lexical_postings_label ON lexical_postings (label);

-- Each term's document frequency in a space (its postings there), kept in step by every change of the space's
-- documents: a query reads it for each of its terms rather than count the postings it scores.
CREATE TABLE lexical_terms (
    space_id TEXT NOT NULL,
    term TEXT NOT NULL,
    df BIGINT NOT NULL,
    PRIMARY KEY (space_id, term)
);

-- The cube's text is inside its serialized message, which SQL cannot read: a database with cubes before this
-- migration has its documents written by the first server to open it (lexical_search.fill_pending).
INSERT INTO meta (key, value)
    SELECT 'lexical_pending', 'true' WHERE EXISTS (SELECT 1 FROM cubes WHERE vec_id IS NOT NULL);
