"""MemScheduler: which memories reach the model for a query, within a token budget, and the use it records."""
