"""edged: durable Conductor workflows for edge gateways."""

__version__ = "0.1.0"
