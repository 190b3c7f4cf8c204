-- The vault's records, as the embedded backend keeps them (memos_grpc/store/schema.py), in PostgreSQL types:
-- BYTEA for DuckDB's BLOB, TEXT[] for its lists, JSONB (an object of strings) for its MAP of labels, and pgvector's
-- vector for a live cube's embedding, so that an HNSW index can search it. Columns keep the embedded backend's
-- names, so the store's statements are written once for both. pgvector is not a trusted extension: a superuser
-- creates it, here or beforehand (docs/scaling.md).
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE spaces (
    space_id TEXT PRIMARY KEY,
    space_pb BYTEA NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    etag TEXT NOT NULL,
    owner TEXT DEFAULT '',
    policy_etag TEXT DEFAULT ''
);

CREATE TABLE cubes (
    space_id TEXT NOT NULL,
    cube_id TEXT NOT NULL,
    cube_pb BYTEA NOT NULL,
    vec_id BIGINT,
    embedding vector,
    type SMALLINT NOT NULL,
    state SMALLINT NOT NULL,
    source SMALLINT NOT NULL,
    semantic_type SMALLINT NOT NULL,
    priority INTEGER NOT NULL,
    model TEXT NOT NULL,
    origin TEXT NOT NULL,
    tags TEXT[] NOT NULL,
    sensitivity_labels TEXT[] NOT NULL,
    labels JSONB NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    update_time TIMESTAMPTZ NOT NULL,
    expire_time TIMESTAMPTZ,
    version BIGINT NOT NULL,
    etag TEXT NOT NULL,
    provenance_id TEXT NOT NULL,
    blob_digest TEXT,
    access_scope SMALLINT DEFAULT 0,
    access_owner TEXT DEFAULT '',
    access_principals TEXT[] DEFAULT '{}',
    PRIMARY KEY (space_id, cube_id)
);

CREATE TABLE principals (
    principal_id TEXT PRIMARY KEY,
    principal_pb BYTEA NOT NULL,
    admin BOOLEAN NOT NULL,
    create_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE credentials (
    credential_id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    -- sha256 of the whole token, hex; the token itself is never stored.
    token_hash TEXT NOT NULL,
    description TEXT NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    expire_time TIMESTAMPTZ,
    revoke_time TIMESTAMPTZ
);

CREATE TABLE audit_events (
    sequence BIGINT PRIMARY KEY,
    time TIMESTAMPTZ NOT NULL,
    principal TEXT NOT NULL,
    method TEXT NOT NULL,
    resource TEXT NOT NULL,
    outcome SMALLINT NOT NULL,
    status_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE space_roles (
    space_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    role SMALLINT NOT NULL,
    PRIMARY KEY (space_id, principal)
);

CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    size_bytes BIGINT NOT NULL,
    media_type TEXT NOT NULL,
    create_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE trust_roots (
    version BIGINT PRIMARY KEY,
    envelope BYTEA NOT NULL,
    expire_time TIMESTAMPTZ NOT NULL,
    create_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE cube_versions (
    space_id TEXT NOT NULL,
    cube_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    cube_pb BYTEA NOT NULL,
    embedding BYTEA,
    blob_digest TEXT,
    update_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (space_id, cube_id, version)
);

CREATE TABLE operations (
    space_id TEXT NOT NULL,
    operation_id TEXT NOT NULL,
    operation_pb BYTEA NOT NULL,
    done BOOLEAN NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (space_id, operation_id)
);

CREATE TABLE blob_uploads (
    space_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    digest TEXT NOT NULL,
    upload_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (space_id, principal, digest)
);

CREATE TABLE tlog_entries (
    entry_index BIGINT PRIMARY KEY,
    entry BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL,
    append_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE tlog_nodes (
    level SMALLINT NOT NULL,
    node_index BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, node_index)
);

CREATE TABLE tlog_checkpoints (
    tree_size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    sign_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE tlog_published (
    tree_size BIGINT PRIMARY KEY,
    note TEXT NOT NULL,
    publish_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE witness_state (
    origin TEXT PRIMARY KEY,
    tree_size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    cosign_time BIGINT NOT NULL
);

CREATE TABLE market_listings (
    listing_id TEXT PRIMARY KEY,
    listing_pb BYTEA NOT NULL,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    tags TEXT[] NOT NULL,
    publisher_keys TEXT[] NOT NULL,
    license TEXT NOT NULL,
    license_ids TEXT[] NOT NULL,
    memory_types INTEGER[] NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    update_time TIMESTAMPTZ NOT NULL,
    etag TEXT NOT NULL,
    embedding BYTEA
);

CREATE TABLE market_releases (
    listing_id TEXT NOT NULL,
    release_id TEXT NOT NULL,
    release_pb BYTEA NOT NULL,
    bundle_digest TEXT NOT NULL,
    statement_digest TEXT NOT NULL,
    yanked BOOLEAN NOT NULL,
    log_index BIGINT NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    license TEXT NOT NULL,
    license_ids TEXT[] NOT NULL,
    memory_types INTEGER[] NOT NULL,
    PRIMARY KEY (listing_id, release_id)
);

CREATE TABLE market_licenses (
    license_id TEXT PRIMARY KEY,
    license_pb BYTEA NOT NULL,
    listing_id TEXT NOT NULL,
    release_id TEXT NOT NULL,
    acquirer TEXT NOT NULL,
    licensee TEXT NOT NULL,
    revoked BOOLEAN NOT NULL,
    log_index BIGINT NOT NULL,
    create_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE held_licenses (
    license_id TEXT PRIMARY KEY,
    grant_envelope BYTEA NOT NULL,
    proof TEXT NOT NULL,
    licensee TEXT NOT NULL,
    log_origin TEXT NOT NULL,
    grant_index BIGINT NOT NULL,
    publish_index BIGINT NOT NULL,
    import_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE held_license_uses (
    license_id TEXT NOT NULL,
    action TEXT NOT NULL,
    uses BIGINT NOT NULL,
    PRIMARY KEY (license_id, action)
);

CREATE TABLE followed_logs (
    origin TEXT PRIMARY KEY,
    tree_size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    frontier BYTEA NOT NULL,
    fresh_time TIMESTAMPTZ NOT NULL,
    sync_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY,
    sequence BIGINT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE market_key_changes (
    log_index BIGINT PRIMARY KEY,
    listing_id TEXT NOT NULL,
    record BYTEA NOT NULL,
    change_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE followed_log_events (
    origin TEXT NOT NULL,
    log_index BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    ref BIGINT NOT NULL,
    PRIMARY KEY (origin, log_index)
);

-- DuckDB's functions the store's statements call, under the same names and meanings, so each statement is written
-- once. Each is one SQL expression, which the planner inlines (quoted bodies: some take any array).
CREATE FUNCTION string_split(text, text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT string_to_array($1, $2) $$;
CREATE FUNCTION list_contains(text[], text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT COALESCE($2 = ANY ($1), FALSE) $$;
CREATE FUNCTION list_contains(integer[], integer) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT COALESCE($2 = ANY ($1), FALSE) $$;
CREATE FUNCTION list_has_any(text[], text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT COALESCE($1 && $2, FALSE) $$;
CREATE FUNCTION len(anyarray) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT cardinality($1) $$;
-- DuckDB's hex is upper case.
CREATE FUNCTION hex(bytea) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT upper(encode($1, 'hex')) $$;
CREATE FUNCTION contains(text, text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT strpos($1, $2) > 0 $$;
CREATE FUNCTION unhex(text) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT decode($1, 'hex') $$;
-- Labels: a JSONB object of strings where DuckDB has a MAP(VARCHAR, VARCHAR).
CREATE FUNCTION map_contains(jsonb, text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT jsonb_exists($1, $2) $$;
CREATE FUNCTION map_extract_value(jsonb, text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT $1 ->> $2 $$;
CREATE FUNCTION cardinality(jsonb) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (SELECT count(*)::integer FROM jsonb_object_keys($1)) $$;
