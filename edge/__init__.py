"""WildWatch edge node: camera media in, anomaly and observation events out (through a durable outbox)."""

__version__ = "0.1.0"
