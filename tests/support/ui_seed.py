"""A store that looks lived-in, for the web UI's tests, screenshots and bench/ui.py.

`small()` goes through the real write paths (journaling.record on real Anthropic-shaped
bodies, memories.add with provenance, Recaller.log_injection, an analyzer run row):
what the UI shows is what engram really stores. `big()` bulk-inserts the same shapes
(10k memories, 100k exchanges in ~20 s) because a million ORM round trips would make
the benchmark mostly about seeding.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engram import journaling
from engram.store import journal, memories, schema
from engram.store.db import Store
from engram.wire.model import RawRequest, RawResponse

PROJECTS = ("/home/dev/shop", "/home/dev/api", "/home/dev/infra")

FACTS = [
    ("preference", "project", "This project uses pnpm, never npm."),
    ("procedure", "project", "Run the tests with `make test`; `make test-fast` skips slow ones."),
    ("decision", "project", "Payments go through Stripe's PaymentIntents API, not Charges."),
    ("gotcha", "project", "The staging database is read-only on Sundays during backups."),
    ("fact", "project", "The API listens on port 8080 behind nginx."),
    ("preference", "global", "The user prefers short answers without preamble."),
    ("preference", "global", "Use British spelling in documentation."),
    ("procedure", "project", "Deploy with `make deploy ENV=staging` before production."),
]

WORDS = (
    "postgres redis pnpm docker compose pytest ruff deploy staging production migration "
    "alembic schema index cache token auth session cookie proxy port build release branch "
    "rebase lint typescript python kubernetes helm terraform bucket queue worker cron "
    "timeout retry backoff config logging tracing metrics nginx tls webhook client"
).split()


def _body(project: str, texts: list[str], model: str = "claude-sonnet-4-5") -> bytes:
    messages = []
    for i, text in enumerate(texts):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return json.dumps(
        {
            "model": model,
            "max_tokens": 1024,
            "system": f"You are a coding agent. Primary working directory: {project}",
            "messages": messages,
        }
    ).encode()


def _reply(text: str) -> bytes:
    return json.dumps(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1200, "output_tokens": 85},
        }
    ).encode()


@dataclass
class Seeded:
    memory_ids: dict[str, str] = field(default_factory=dict)  # content -> id
    exchange_ids: list[int] = field(default_factory=list)
    conversations: list[str] = field(default_factory=list)


def capture(
    store: Store, key: str, conversation: str, project: str, texts: list[str], answer: str
) -> int:
    """Journal one agent request the way the proxy does (parse, delta, redact)."""
    with store.write() as session:
        recorded = journaling.record(
            session,
            journaling.Capture(
                "proxy",
                key,
                RawRequest(
                    body=_body(project, texts),
                    path="/v1/messages",
                    host="api.anthropic.com",
                    headers=[("X-Claude-Code-Session-Id", conversation)],
                ),
                RawResponse(status_code=200, body=_reply(answer)),
                project_hint=project,
            ),
            journaling.CapturePolicy(),
        )
    return recorded.id


def small(store: Store) -> Seeded:
    """A few conversations in two projects, memories derived from them, one forgotten,
    one superseded, injections and an analyzer run."""
    from engram.store.models import AnalyzerRun

    out = Seeded()
    shop, api = PROJECTS[0], PROJECTS[1]
    turns = [
        "We use pnpm here, never npm. Please add the date-fns package.",
        "Done: `pnpm add date-fns`.",
        "Now run the tests. Remember the token is sk-ant-api03-"
        "Lk7pQ2wX9rT4vN8mB3hJ6fD1sA5gK0zC7xV2bN9mQ4wE8rT1yU6iO3pL5kJ8hG2fD4sA7zX for staging.",
    ]
    out.exchange_ids.append(capture(store, "k1", "conv-shop-1", shop, turns[:1], turns[1]))
    out.exchange_ids.append(
        capture(store, "k2", "conv-shop-1", shop, turns, "Running `make test` now.")
    )
    out.exchange_ids.append(
        capture(
            store,
            "k3",
            "conv-api-1",
            api,
            ["The API listens on port 8080 behind nginx; check the health endpoint."],
            "It answers 200 on /healthz.",
        )
    )
    out.conversations = ["conv-shop-1", "conv-api-1"]
    with store.write() as session:
        for kind, scope, text in FACTS:
            project = api if "API" in text else shop
            prov = (
                [f"x-{out.exchange_ids[2 if 'API' in text else 0]}"] if scope == "project" else []
            )
            result = memories.add(
                session,
                text,
                kind=kind,
                scope=project if scope == "project" else "global",
                source="analyzer:anthropic" if prov else "manual",
                provenance=prov,
                actor="analyzer" if prov else "cli",
            )
            out.memory_ids[text] = result.memory.id
        old = memories.add(
            session, "Deploys happen on Fridays.", kind="fact", scope=shop, actor="cli"
        ).memory
        memories.supersede(
            session, old.id, "Deploys happen on Tuesdays and Thursdays.", actor="cli"
        )
        gone = memories.add(session, "Use yarn for the frontend.", scope=shop, actor="cli").memory
        memories.forget(session, gone.id, actor="cli")
        now = schema.now_iso()
        journal.mark(session, out.exchange_ids[:2], "analyzed")
        session.add(
            AnalyzerRun(
                started_at=now,
                ended_at=now,
                backend="anthropic",
                model="claude-haiku-4-5",
                prompt_version="test",
                project=shop,
                exchanges=json.dumps(out.exchange_ids[:2]),
                status="ok",
                input_tokens=5400,
                output_tokens=220,
                cost_usd=0.0065,
                commands=3,
                added=3,
            )
        )
    _inject(
        store,
        [
            ("how do I run the tests here?", shop, "conv-shop-1"),
            ("add the date-fns package", shop, "conv-shop-1"),
            ("is the api behind nginx?", api, "conv-api-1"),
        ],
    )
    return out


def _inject(store: Store, requests: list[tuple[str, str, str]]) -> None:
    """Recall for a few requests and log what it gave, as the proxy does after a request."""
    from engram.recall.service import Recaller

    recaller = Recaller(store, None, background=False)
    try:
        for query, project, conversation in requests:
            recaller.log_injection(recaller.recall(query, project), conversation)
    finally:
        recaller.close()


# -- the benchmark's store ---------------------------------------------------------------


def big(
    store: Store, *, memories_n: int = 10_000, exchanges_n: int = 100_000, days: int = 30
) -> None:
    """Bulk-insert a heavy user's month: exchanges in ~1000 conversations over
    `days` days and 3 projects, memories with provenance, add and inject events,
    analyzer runs. Same columns and shapes as the real write paths produce."""
    from sqlalchemy import insert

    from engram.store.models import AnalyzerRun, Conversation, Event, ExchangeRow, Memory

    rng = random.Random(17)
    start = datetime.now(UTC) - timedelta(days=days)
    span = days * 86400

    def at(i: int, n: int) -> str:
        return schema.to_iso(start + timedelta(seconds=span * i / n + rng.random()))

    def sentence(k: int) -> str:
        return " ".join(rng.choices(WORDS, k=k))

    conversations = [f"conv-{i:05d}" for i in range(max(1, exchanges_n // 100))]
    conv_project = {c: rng.choice(PROJECTS) for c in conversations}
    rows: list[dict[str, Any]] = []
    conv_stats: dict[str, list[Any]] = {}
    for i in range(exchanges_n):
        conv = conversations[
            min(
                len(conversations) - 1, int(i / exchanges_n * len(conversations) + rng.random() * 3)
            )
        ]
        when = at(i, exchanges_n)
        turns = [
            {"role": "user", "text": sentence(rng.randint(8, 40))},
            {"role": "assistant", "text": sentence(rng.randint(20, 120))},
        ]
        rows.append(
            {
                "id": i + 1,
                "source": rng.choice(("proxy", "proxy", "mitmweb", "addon")),
                "source_key": f"bench-{i}",
                "fingerprint": f"{i:064x}",
                "kind": "conversation" if rng.random() < 0.9 else "side-call",
                "format": "anthropic",
                "provider": "anthropic",
                "host": "api.anthropic.com",
                "endpoint": "/v1/messages",
                "model": "claude-sonnet-4-5",
                "conversation": conv,
                "project": conv_project[conv],
                "status_code": 200,
                "stream": True,
                "truncated": False,
                "started_at": when,
                "ended_at": when,
                "captured_at": when,
                "input_tokens": rng.randint(2000, 60000),
                "output_tokens": rng.randint(50, 2000),
                "cache_read_tokens": 0,
                "cache_creation_tokens": 0,
                "request_bytes": rng.randint(5000, 200000),
                "response_bytes": rng.randint(500, 20000),
                "new_turns": 2,
                "turns": json.dumps(turns),
                "status": "analyzed" if i < exchanges_n - 50 else "pending",
                "error": None,
                "attempts": 0,
            }
        )
        stat = conv_stats.setdefault(conv, [0, when, when])
        stat[0] += 1
        stat[2] = when
    mems: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for i in range(memories_n):
        when = at(i, memories_n)
        content = f"Fact {i}: {sentence(rng.randint(6, 16))}."
        src = rng.randint(1, exchanges_n)
        project = rows[src - 1]["project"] if rng.random() < 0.8 else "global"
        status = rng.choices(("active", "superseded", "forgotten"), (90, 5, 5))[0]
        mid = f"m-{i:08d}"
        mems.append(
            {
                "seq": i + 1,
                "id": mid,
                "content": content,
                "kind": rng.choice(schema.KINDS),
                "scope": project,
                "source": "analyzer:anthropic" if rng.random() < 0.85 else "manual",
                "provenance": json.dumps([f"x-{src}"]),
                "status": status,
                "superseded_by": None,
                "created_at": when,
                "updated_at": when,
                "use_count": 0,
                "last_used_at": None,
                "content_hash": schema.content_hash(content),
            }
        )
        events.append(
            {
                "at": when,
                "action": "add",
                "memory_id": mid,
                "actor": "analyzer",
                "detail": json.dumps({"content": content}),
            }
        )
    for _n in range(exchanges_n // 4):  # a quarter of requests got memory, ~3 memories each
        x = rows[rng.randint(0, exchanges_n - 1)]
        for _ in range(3):
            mid = f"m-{rng.randint(0, memories_n - 1):08d}"
            events.append(
                {
                    "at": x["captured_at"],
                    "action": "inject",
                    "memory_id": mid,
                    "actor": "recall",
                    "detail": json.dumps(
                        {"conversation": x["conversation"], "score": 0.5, "query": sentence(6)}
                    ),
                }
            )
    events.sort(key=lambda e: e["at"])
    runs = []
    for i in range(exchanges_n // 20):
        when = at(i, exchanges_n // 20)
        first = i * 20 + 1
        runs.append(
            {
                "started_at": when,
                "ended_at": when,
                "backend": "anthropic",
                "model": "claude-haiku-4-5",
                "prompt_version": "bench",
                "project": rng.choice(PROJECTS),
                "exchanges": json.dumps(list(range(first, first + 20))),
                "status": "ok",
                "input_tokens": rng.randint(5000, 30000),
                "output_tokens": rng.randint(100, 800),
                "cost_usd": rng.random() * 0.03,
                "commands": 3,
                "added": 2,
            }
        )
    with store.write() as session:
        for chunk in range(0, len(rows), 5000):
            session.execute(insert(ExchangeRow), rows[chunk : chunk + 5000])
        session.execute(
            insert(Conversation),
            [
                {
                    "key": c,
                    "project": conv_project[c],
                    "seen": "{}",
                    "exchanges": s[0],
                    "first_at": s[1],
                    "last_at": s[2],
                }
                for c, s in conv_stats.items()
            ],
        )
        for chunk in range(0, len(mems), 5000):
            session.execute(insert(Memory), mems[chunk : chunk + 5000])
        for chunk in range(0, len(events), 5000):
            session.execute(insert(Event), events[chunk : chunk + 5000])
        session.execute(insert(AnalyzerRun), runs)
