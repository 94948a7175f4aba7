"""Figures over the bot's source tables: dashboard analytics, funnel and retention."""
