-- Payload blobs' bytes, for servers that share the database: each blob as numbered chunks of exactly 1 MiB
-- (1048576 bytes; the last one shorter, an empty blob one empty chunk), all inserted in one transaction, so chunk 0
-- exists only for a complete blob and a ranged read fetches only the chunks it needs (store/postgres/blobs.py).
-- The chunk size is part of the schema: a blob's size and a chunk's place are computed from it.
CREATE TABLE blob_chunks (
    digest TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (digest, chunk)
);
-- Payloads are mostly incompressible (KV caches, adapters, compressed bundles): store them out of line without
-- trying to compress them, which also lets substring() fetch a part of a chunk without reading all of it.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- A blob's bytes go in the transaction that deletes its ``blobs`` row (a removal releasing the blob, the sweep of
-- unnamed uploads), so no crash or shutdown between that commit and the server's clean-up leaves them behind.
-- Bytes stored before their row is registered are not touched: only a deleted row takes its bytes.
CREATE FUNCTION blob_bytes_go_with_their_row() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN DELETE FROM blob_chunks WHERE digest = OLD.digest; RETURN OLD; END $$;
CREATE TRIGGER blob_bytes_go_with_their_row AFTER DELETE ON blobs
    FOR EACH ROW EXECUTE FUNCTION blob_bytes_go_with_their_row();
