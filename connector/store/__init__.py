"""The ledger: the database is the single source of truth for every bill's state."""
