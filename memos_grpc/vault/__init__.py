"""The vault (MemVault): cubes and spaces in DuckDB, vectors in hnswlib, payloads as blobs."""
