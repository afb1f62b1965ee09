"""engram ui: a local web page over the store (see docs/ui.md)."""
