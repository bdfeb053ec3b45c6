"""Attack scenarios for the detection evaluation: crafted pcaps and live loopback captures."""
