"""MemGovernance: who is calling (principals, credentials), what they may do (policy), and the audit log."""
