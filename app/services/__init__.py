"""Business rules. Plain functions, tenant first; each owns its transaction."""
