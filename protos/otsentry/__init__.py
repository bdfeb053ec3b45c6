"""otsentry: passive security sensing for Modbus/TCP OT networks.

The distribution spreads this package over the repository's top-level folders:
``otsentry.agent`` (agent/), ``otsentry.collector`` (collector/),
``otsentry.common`` (common/) and ``otsentry.v1`` (generated from protos/).
"""

__version__ = "0.1.0"
