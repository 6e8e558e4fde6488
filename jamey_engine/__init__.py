"""Jamey engine: memory store, API keys, rate limits, backups, metrics and the service."""

__version__ = "0.1.0"
