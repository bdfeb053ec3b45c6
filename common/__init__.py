"""Code shared by the agent and the collector: errors, logging, config, TLS."""
