"""The store: the only code that holds SQL and writes the derived stores.

DuckDB rows (cubes, versions, spaces, principals, audit, operations, trust, marketplace records), the hnswlib
vector indexes, the in-memory search catalog with its BM25 index, and the content-addressed blob files are
written here and nowhere else. Components above call its typed functions inside the transactions it runs;
it imports no component (``tests/test_layers.py``).
"""
