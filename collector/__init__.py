"""The otsentry collector: ingest, store, correlate, feed and report upstream."""
