"""Tests of otsentry.common."""
