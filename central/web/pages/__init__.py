"""One module per console page (thin: queries in central/web/queries.py)."""
