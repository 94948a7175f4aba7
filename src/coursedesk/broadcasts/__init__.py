"""Broadcasts: audiences, the sender, scheduling, delivery tracking."""
