"""Tests of the benchmark tooling under bench/."""
