"""Deterministic, realistic rows for the source tables: for the seeder and for tests."""
