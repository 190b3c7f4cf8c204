"""Embedders: the packaged all-MiniLM-L6-v2 default, and the batching worker that serves it."""
