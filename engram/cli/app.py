"""The `engram` command: the app with every command module registered, and `main()`.

Importing a command module registers its commands on `engram.cli.base.app`; the order of
the imports below is the order `engram --help` lists them in (it reads as a tour).
"""

from __future__ import annotations

import importlib
import sys

from engram.cli.base import app

# Help order: curating memories first, then recall, capture, the proxy, integrations, admin.
COMMAND_MODULES = (
    "memories",
    "review",
    "transfer",
    "recall_cmd",
    "ui_cmd",
    "watch",
    "ingest_cmd",
    "proxy_cmd",
    "hooks_cmd",
    "mcp_cmd",
    "mirror",
    "models_cmd",
    "privacy",
    "service_cmd",
    "ops_cmd",
    "admin",
)
for _name in COMMAND_MODULES:
    importlib.import_module(f"engram.cli.{_name}")

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
