"""Alembic migrations of the Jamey database, shipped in the package (driven by jamey_engine.db)."""
