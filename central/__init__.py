"""WildWatch central: ingest from the broker, store, alert the duty officer, report at 15:00."""
