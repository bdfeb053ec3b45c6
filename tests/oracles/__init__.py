"""Independent oracles our decoder is checked against (tshark, …)."""
