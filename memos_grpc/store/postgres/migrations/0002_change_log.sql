-- What servers sharing the database must learn of each other's writes, numbered 1, 2, 3... in commit order:
-- writes take one advisory lock from before their transaction begins until it ends, so the next number is always
-- the highest committed plus one. ``put`` labels are cubes (re)written, to be read again; ``removed`` labels are
-- gone. A server follows the log from the last number it applied (memos_grpc/store/postgres/follower.py).
CREATE TABLE change_log (
    number BIGINT PRIMARY KEY,
    origin TEXT NOT NULL,
    kind TEXT NOT NULL,
    space_id TEXT NOT NULL DEFAULT '',
    put BIGINT[] NOT NULL DEFAULT '{}',
    removed BIGINT[] NOT NULL DEFAULT '{}',
    commit_time TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Vector labels, unique across every server of the database (never issued twice, even by writes that roll back).
CREATE SEQUENCE vec_ids;
SELECT setval('vec_ids', coalesce((SELECT max(vec_id) FROM cubes), 0) + 1, false);
