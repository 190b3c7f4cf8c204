"""MemStore, the marketplace: log entries, terms, license grants and the durable log (docs/marketplace.md)."""
