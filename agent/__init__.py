"""The otsentry agent: capture, decode, inventory and detection for Modbus/TCP."""
