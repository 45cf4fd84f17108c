"""Central database: ORM models, engine/session set-up and migrations."""
