"""Answers of read-heavy routes kept for a few seconds: in Redis, or in the process."""
