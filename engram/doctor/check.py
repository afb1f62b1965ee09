"""One finding of `engram doctor`, and the HTTP session every check uses."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from engram.wire.markers import INTERNAL_HEADERS


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def session() -> Any:
    import requests

    s = requests.Session()
    s.trust_env = False  # never through a proxy: that may be the very thing being checked
    s.headers.update(INTERNAL_HEADERS)
    return s
