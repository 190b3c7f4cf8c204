"""The DuckDB schema of the vault: the source of truth for spaces and cubes.

Each cube row keeps the whole ``MemCube`` message as the server serialized it
(``cube_pb``) beside the columns that filters, paging and index repair need.
The columns are copies taken at write time; ``cube_pb`` is what reads return.
Enum columns hold the protobuf enum numbers.
"""

from __future__ import annotations

import duckdb

SCHEMA_VERSION = 13

DDL = [
    """
    CREATE TABLE IF NOT EXISTS meta (
        key VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS spaces (
        space_id VARCHAR PRIMARY KEY,
        space_pb BLOB NOT NULL,
        create_time TIMESTAMPTZ NOT NULL,
        etag VARCHAR NOT NULL,
        owner VARCHAR DEFAULT '',
        policy_etag VARCHAR DEFAULT ''
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS cubes (
        space_id VARCHAR NOT NULL,
        cube_id VARCHAR NOT NULL,
        cube_pb BLOB NOT NULL,
        -- hnswlib label of the cube's vector; NULL when it has none.
        vec_id BIGINT,
        -- The vector as little-endian float32 bytes: a list column costs several times more to write.
        embedding BLOB,
        type SMALLINT NOT NULL,
        state SMALLINT NOT NULL,
        source SMALLINT NOT NULL,
        semantic_type SMALLINT NOT NULL,
        priority INTEGER NOT NULL,
        model VARCHAR NOT NULL,
        origin VARCHAR NOT NULL,
        tags VARCHAR[] NOT NULL,
        sensitivity_labels VARCHAR[] NOT NULL,
        labels MAP(VARCHAR, VARCHAR) NOT NULL,
        create_time TIMESTAMPTZ NOT NULL,
        update_time TIMESTAMPTZ NOT NULL,
        expire_time TIMESTAMPTZ,
        version BIGINT NOT NULL,
        etag VARCHAR NOT NULL,
        provenance_id VARCHAR NOT NULL,
        blob_digest VARCHAR,
        access_scope SMALLINT DEFAULT 0,
        access_owner VARCHAR DEFAULT '',
        access_principals VARCHAR[] DEFAULT [],
        PRIMARY KEY (space_id, cube_id)
    )
    """,
    # v2: governance. (The ALTERs upgrade older files; new ones get the columns at CREATE.)
    "ALTER TABLE spaces ADD COLUMN IF NOT EXISTS owner VARCHAR DEFAULT ''",
    """
    CREATE TABLE IF NOT EXISTS principals (
        principal_id VARCHAR PRIMARY KEY,
        principal_pb BLOB NOT NULL,
        admin BOOLEAN NOT NULL,
        create_time TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS credentials (
        credential_id VARCHAR PRIMARY KEY,
        principal_id VARCHAR NOT NULL,
        -- sha256 of the whole token, hex; the token itself is never stored.
        token_hash VARCHAR NOT NULL,
        description VARCHAR NOT NULL,
        create_time TIMESTAMPTZ NOT NULL,
        expire_time TIMESTAMPTZ,
        revoke_time TIMESTAMPTZ
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS audit_events (
        sequence BIGINT PRIMARY KEY,
        time TIMESTAMPTZ NOT NULL,
        principal VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        resource VARCHAR NOT NULL,
        outcome SMALLINT NOT NULL,
        status_code VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        previous_hash VARCHAR NOT NULL,
        hash VARCHAR NOT NULL
    )
    """,
    # v3: access policies (roles on spaces) and each cube's own access narrowing.
    """
    CREATE TABLE IF NOT EXISTS space_roles (
        space_id VARCHAR NOT NULL,
        principal VARCHAR NOT NULL,
        role SMALLINT NOT NULL,
        PRIMARY KEY (space_id, principal)
    )
    """,
    "ALTER TABLE spaces ADD COLUMN IF NOT EXISTS policy_etag VARCHAR DEFAULT ''",
    "INSERT INTO space_roles SELECT space_id, owner, 3 FROM spaces WHERE owner <> '' ON CONFLICT DO NOTHING",
    "ALTER TABLE cubes ADD COLUMN IF NOT EXISTS access_scope SMALLINT DEFAULT 0",
    "ALTER TABLE cubes ADD COLUMN IF NOT EXISTS access_owner VARCHAR DEFAULT ''",
    "ALTER TABLE cubes ADD COLUMN IF NOT EXISTS access_principals VARCHAR[] DEFAULT []",
    """
    CREATE TABLE IF NOT EXISTS blobs (
        digest VARCHAR PRIMARY KEY,
        size_bytes BIGINT NOT NULL,
        media_type VARCHAR NOT NULL,
        create_time TIMESTAMPTZ NOT NULL
    )
    """,
    # v4: the trust root, every version as signed (the newest is in force).
    """
    CREATE TABLE IF NOT EXISTS trust_roots (
        version BIGINT PRIMARY KEY,
        envelope BLOB NOT NULL,
        expire_time TIMESTAMPTZ NOT NULL,
        create_time TIMESTAMPTZ NOT NULL
    )
    """,
    # v5: every version of every cube, immutable (the live row in ``cubes`` is the newest). A version
    # names its blob by digest, so versions never copy blob bytes.
    """
    CREATE TABLE IF NOT EXISTS cube_versions (
        space_id VARCHAR NOT NULL,
        cube_id VARCHAR NOT NULL,
        version BIGINT NOT NULL,
        cube_pb BLOB NOT NULL,
        embedding BLOB,
        blob_digest VARCHAR,
        update_time TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (space_id, cube_id, version)
    )
    """,
    # v6: long-running operations (transforms). Written when queued and when done; progress stays in memory.
    """
    CREATE TABLE IF NOT EXISTS operations (
        space_id VARCHAR NOT NULL,
        operation_id VARCHAR NOT NULL,
        operation_pb BLOB NOT NULL,
        done BOOLEAN NOT NULL,
        create_time TIMESTAMPTZ NOT NULL,
        owner VARCHAR DEFAULT '',
        cancel_requested BOOLEAN DEFAULT FALSE,
        PRIMARY KEY (space_id, operation_id)
    )
    """,
    # v13: the server running an operation, and a cancel asked for on another server (servers sharing a
    # PostgreSQL database; an embedded vault has one server).
    "ALTER TABLE operations ADD COLUMN IF NOT EXISTS owner VARCHAR DEFAULT ''",
    "ALTER TABLE operations ADD COLUMN IF NOT EXISTS cancel_requested BOOLEAN DEFAULT FALSE",
    # v7: who uploaded which blob into which space, and when (the last time). A cube may name a blob only
    # if its caller uploaded it into the cube's space within blob_grace_seconds, or if a cube of that space
    # the caller may read in full names it already: a digest is storage, never permission.
    """
    CREATE TABLE IF NOT EXISTS blob_uploads (
        space_id VARCHAR NOT NULL,
        principal VARCHAR NOT NULL,
        digest VARCHAR NOT NULL,
        upload_time TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (space_id, principal, digest)
    )
    """,
    # v8: the marketplace's transparency log (memos_grpc/marketplace/log.py), append-only. Entries by index; the
    # hash of every complete subtree by (level, index), written as it completes, so proofs and roots read stored
    # hashes instead of rebuilding the tree; signed checkpoints keyed by tree size, so the log can never sign a
    # second root for a size it signed, not even after a restart.
    """
    CREATE TABLE IF NOT EXISTS tlog_entries (
        entry_index BIGINT PRIMARY KEY,
        entry BLOB NOT NULL,
        leaf_hash BLOB NOT NULL,
        append_time TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS tlog_nodes (
        level SMALLINT NOT NULL,
        node_index BIGINT NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (level, node_index)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS tlog_checkpoints (
        tree_size BIGINT PRIMARY KEY,
        root BLOB NOT NULL,
        note VARCHAR NOT NULL,
        sign_time TIMESTAMPTZ NOT NULL
    )
    """,
    # v9: checkpoints the marketplace published: the log's signed note with the witnesses' cosignatures, once
    # the policy's quorum cosigned it (memos_grpc/marketplace/node.py). Only these are served.
    """
    CREATE TABLE IF NOT EXISTS tlog_published (
        tree_size BIGINT PRIMARY KEY,
        note VARCHAR NOT NULL,
        publish_time TIMESTAMPTZ NOT NULL
    )
    """,
    # v10: what this node witnesses (memos_grpc/witness/): per log origin, the latest checkpoint it cosigned (tree
    # size, root hash, the signed note) and the unix time of that cosignature. A new checkpoint is cosigned only
    # if it extends this one.
    """
    CREATE TABLE IF NOT EXISTS witness_state (
        origin VARCHAR PRIMARY KEY,
        tree_size BIGINT NOT NULL,
        root BLOB NOT NULL,
        note VARCHAR NOT NULL,
        cosign_time BIGINT NOT NULL
    )
    """,
    # v11: the marketplace's records (memos_grpc/marketplace/listings.py, releases.py, licenses.py). Each row keeps
    # its whole message as the server serialized it beside the columns lookups, paging and filters need. A release's
    # bundle is a content-addressed blob of the vault's blob store (bundle_digest); its embedding is the listing's
    # text at publish time, for SearchListings.
    """
    CREATE TABLE IF NOT EXISTS market_listings (
        listing_id VARCHAR PRIMARY KEY,
        listing_pb BLOB NOT NULL,
        owner VARCHAR NOT NULL,
        -- Copies of listing_pb's fields that ListListings and SearchListings filter on (AIP-160).
        title VARCHAR NOT NULL,
        tags VARCHAR[] NOT NULL,
        publisher_keys VARCHAR[] NOT NULL,
        license VARCHAR NOT NULL,
        license_ids VARCHAR[] NOT NULL,
        memory_types INTEGER[] NOT NULL,
        create_time TIMESTAMPTZ NOT NULL,
        update_time TIMESTAMPTZ NOT NULL,
        etag VARCHAR NOT NULL,
        embedding BLOB
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS market_releases (
        listing_id VARCHAR NOT NULL,
        release_id VARCHAR NOT NULL,
        release_pb BLOB NOT NULL,
        bundle_digest VARCHAR NOT NULL,
        statement_digest VARCHAR NOT NULL,
        yanked BOOLEAN NOT NULL,
        log_index BIGINT NOT NULL,
        create_time TIMESTAMPTZ NOT NULL,
        -- Copies of release_pb's fields that ListReleases filters on (AIP-160).
        license VARCHAR NOT NULL,
        license_ids VARCHAR[] NOT NULL,
        memory_types INTEGER[] NOT NULL,
        PRIMARY KEY (listing_id, release_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS market_licenses (
        license_id VARCHAR PRIMARY KEY,
        license_pb BLOB NOT NULL,
        listing_id VARCHAR NOT NULL,
        release_id VARCHAR NOT NULL,
        acquirer VARCHAR NOT NULL,
        licensee VARCHAR NOT NULL,
        revoked BOOLEAN NOT NULL,
        log_index BIGINT NOT NULL,
        create_time TIMESTAMPTZ NOT NULL
    )
    """,
    # v12: a buyer's side of the marketplace (memos_grpc/marketplace/held.py, follower.py). A held license is a
    # grant this node verified at a licensed import (keyed by the grant's sha256), with its uses per action; a
    # followed log is what this node accepted of a marketplace log (its checkpoint, the RFC 6962 frontier of its
    # entries, and when a quorum of witnesses last cosigned it); followed_log_events the revocations and yanks
    # read from it.
    """
    CREATE TABLE IF NOT EXISTS held_licenses (
        license_id VARCHAR PRIMARY KEY,
        grant_envelope BLOB NOT NULL,
        proof VARCHAR NOT NULL,
        licensee VARCHAR NOT NULL,
        log_origin VARCHAR NOT NULL,
        grant_index BIGINT NOT NULL,
        publish_index BIGINT NOT NULL,
        import_time TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS held_license_uses (
        license_id VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        uses BIGINT NOT NULL,
        PRIMARY KEY (license_id, action)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS followed_logs (
        origin VARCHAR PRIMARY KEY,
        tree_size BIGINT NOT NULL,
        root BLOB NOT NULL,
        note VARCHAR NOT NULL,
        frontier BLOB NOT NULL,
        fresh_time TIMESTAMPTZ NOT NULL,
        sync_time TIMESTAMPTZ NOT NULL
    )
    """,
    # The audit chain's end, one row: appends read and move it instead of scanning audit_events for the newest
    # event (which grew with the log). Seeded from the log as it is when the table is new.
    """
    CREATE TABLE IF NOT EXISTS audit_head (
        id INTEGER PRIMARY KEY,
        sequence BIGINT NOT NULL,
        hash VARCHAR NOT NULL
    )
    """,
    """
    INSERT INTO audit_head
    SELECT 1, sequence, hash FROM audit_events ORDER BY sequence DESC LIMIT 1
    ON CONFLICT (id) DO NOTHING
    """,
    # The log stores only subtrees of at least 1024 leaves (marketplace/log.py STORED_LEVEL); smaller ones are
    # hashed from the leaves when needed, so the table a proof joins against stays small.
    "DELETE FROM tlog_nodes WHERE level < 10",
    # A marketplace's publisher-key changes (the first release pins its listing's keys): the canonical JSON each
    # ``key`` log entry digests, so the entry can be checked against what it records.
    """
    CREATE TABLE IF NOT EXISTS market_key_changes (
        log_index BIGINT PRIMARY KEY,
        listing_id VARCHAR NOT NULL,
        record BLOB NOT NULL,
        change_time TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS followed_log_events (
        origin VARCHAR NOT NULL,
        log_index BIGINT NOT NULL,
        kind VARCHAR NOT NULL,
        subject VARCHAR NOT NULL,
        ref BIGINT NOT NULL,
        PRIMARY KEY (origin, log_index)
    )
    """,
    # Rows of cubes named by id on DuckDB: DuckDB 1.5 scans an index only for a predicate on one column, never
    # the two-column primary keys, so without these a read, update or delete by name scans the table
    # (store/named.py).
    "CREATE INDEX IF NOT EXISTS cubes_cube_id ON cubes (cube_id)",
    "CREATE INDEX IF NOT EXISTS cube_versions_cube_id ON cube_versions (cube_id)",
    # Cubes written before v5 get their current version as their first recorded one.
    """
    INSERT INTO cube_versions
    SELECT space_id, cube_id, version, cube_pb, embedding, blob_digest, update_time FROM cubes
    ON CONFLICT DO NOTHING
    """,
]


def migrate(connection: duckdb.DuckDBPyConnection) -> None:
    """Creates or upgrades the schema, records its version, and checkpoints.

    The checkpoint moves the DDL out of the write-ahead log into the database
    file: DuckDB 1.5 cannot replay some ALTER TABLE records after a crash, and
    a schema change must never be what a crash leaves to replay.
    """
    for statement in DDL:
        connection.execute(statement)
    connection.execute(
        "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [str(SCHEMA_VERSION)],
    )
    connection.execute("CHECKPOINT")
