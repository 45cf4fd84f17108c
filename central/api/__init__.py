"""HTTP API of central (FastAPI)."""
