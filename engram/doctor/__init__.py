"""`engram doctor`: is every part of this set-up working, and if not, how to fix it.

Each check returns one `Check`: ok, warn (works, but worth fixing), fail (a required
part is broken) or skip (not configured / not applicable), with what was found and the
fix. Nothing here spends tokens or changes anything: the analyzer check lists models,
the mitmweb check reads options, the database check runs `PRAGMA integrity_check`.
The checks live by what they look at: this machine (`local`), the services engram talks
to (`services`), the agents and the web UI (`edges`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engram.config import Config
from engram.doctor.check import Check
from engram.doctor.edges import check_agents, check_ui
from engram.doctor.local import check_ca, check_database, check_python, check_service
from engram.doctor.services import check_analyzer, check_mitmweb, check_muninn

__all__ = ["Check", "healthy", "run_all"]


def run_all(cfg: Config, db_path: Path) -> list[Check]:
    checks: list[Check] = []
    steps: list[Callable[[], list[Check]]] = [
        check_python,
        lambda: check_database(db_path, cfg.store.busy_timeout_ms),
        lambda: check_mitmweb(cfg),
        check_ca,
        lambda: check_analyzer(cfg),
        lambda: check_muninn(cfg),
        check_service,
        check_ui,
        check_agents,
    ]
    for step in steps:
        try:
            checks.extend(step())
        except Exception as exc:  # a broken check is a finding, not a crash
            checks.append(
                Check(
                    "doctor",
                    getattr(step, "__name__", "check"),
                    "fail",
                    f"the check itself failed: {exc!r}",
                )
            )
    return checks


def healthy(checks: list[Check]) -> bool:
    return not any(c.status == "fail" and c.required for c in checks)
