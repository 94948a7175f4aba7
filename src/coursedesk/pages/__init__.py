"""The server-rendered pages staff use: dashboard, students, broadcasts and system."""
