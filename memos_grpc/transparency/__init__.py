"""The transparency-log formats, as a pure offline library (no DuckDB, no gRPC).

``merkle`` (RFC 6962 / RFC 9162 hashing and proofs), ``note`` (C2SP signed-note), ``checkpoint`` (C2SP
tlog-checkpoint), ``cosignature``, ``policy``, ``proof`` and ``log_keys`` (the list of log vkeys the witness_logs
setting holds): what the log, its witnesses, buyer nodes and the offline verifier share. Import the modules
themselves; this package re-exports nothing.
"""
