"""WildWatch edge node: camera media in, anomaly and observation events out via a durable outbox."""

__version__ = "0.1.0"
