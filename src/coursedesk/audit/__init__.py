"""The audit log: who changed what, when, through the app or by SQL."""
