"""Per-backend tables of the read models."""
