"""The embedded runtime: one process, no broker, state and upload ledger in SQLite."""
