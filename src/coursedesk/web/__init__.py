"""The web layer: the FastAPI app, its dependencies and error handling."""
