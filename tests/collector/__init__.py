"""Tests of otsentry.collector."""
