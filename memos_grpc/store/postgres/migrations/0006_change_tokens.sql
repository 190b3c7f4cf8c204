-- A random token for each change. A server checks that the last change it applied is still in the log as it
-- applied it: after a failover that lost commits, the lost numbers are issued again to other changes, and a
-- server that had applied the lost ones would otherwise skip the new ones for good
-- (memos_grpc/store/postgres/follower.py). A row written without a token gets one from the default.
ALTER TABLE change_log ADD COLUMN token UUID NOT NULL DEFAULT gen_random_uuid();
