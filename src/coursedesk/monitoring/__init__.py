"""Figures of the running app: its queries, connection pools, requests, and /metrics."""
