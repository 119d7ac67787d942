"""Persistence: settings, embedded PostgreSQL, ORM models, services, embeddings."""
