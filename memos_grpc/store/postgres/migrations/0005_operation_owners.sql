-- The server running each operation (its change-log origin), and a cancel asked for on another server: servers
-- sharing the database read, watch and cancel each other's operations, and mark FAILED those of a server that
-- stopped (scheduler/operations.py).
ALTER TABLE operations ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE operations ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
