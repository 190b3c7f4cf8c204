"""Witnessing transparency logs: C2SP tlog-witness ``add-checkpoint`` over the vault's DuckDB.

A node configured with ``witness_logs`` keeps, per log, the latest checkpoint it cosigned (table
``witness_state``), and cosigns a new checkpoint only when the log's key signed it and a consistency proof
leads to it from that checkpoint; so a log that forks or rolls back its history loses its witnesses.
``witness`` holds the state and the witness key; ``transparency.log_keys`` reads the configured log keys.
"""
