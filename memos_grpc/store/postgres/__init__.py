"""The PostgreSQL backend of the store: the same records in PostgreSQL, for many server replicas on one database.

``database.py`` opens it (a connection pool, the writer), ``cursor.py`` runs the store's statements on psycopg,
and ``migrations.py`` brings the schema (``migrations/NNNN_name.sql``) up to date. docs/scaling.md is the
operator's guide.
"""
