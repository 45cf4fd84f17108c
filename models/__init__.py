"""Model registry: manifest of pinned models, install (import/pull), verification and lookup."""
