"""Scripts that print speed, memory and quality figures (`python -m benchmarks.<name>`)."""
