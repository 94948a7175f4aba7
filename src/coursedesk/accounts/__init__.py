"""Staff accounts: users, roles, passwords, sessions and API tokens."""
