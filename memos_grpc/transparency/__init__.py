"""The transparency-log formats, as a pure offline library (no DuckDB, no gRPC).

``merkle`` (RFC 6962 / RFC 9162 hashing and proofs), ``note`` (C2SP signed-note), ``checkpoint`` (C2SP
tlog-checkpoint), ``cosignature``, ``policy`` and ``proof``: what the log, its witnesses, buyer nodes and the
offline verifier share. Import the modules themselves; this package re-exports nothing.
"""
