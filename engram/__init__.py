"""engram: long-term memory for stateless AI coding agents."""

__version__ = "0.1.0"
