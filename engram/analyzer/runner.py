"""Running the analyzer over pending journal rows, and applying what it proposes.

Pending rows are grouped by project, kept in capture order, and packed into batches
under the input budget (a bigger batch is split, never truncated). Each batch goes to a
backend with the existing memories most like it, so the model can update rather than
duplicate. The answer is parsed with engram's own grammar and validated; the batch's
memory changes, its exchanges' new status and the run's accounting are written in one
transaction. Failures never lose a batch: its rows stay pending with an attempt count,
and are parked as `failed` only after `analyzer.max_attempts`.

What an answer may change is bounded in code by engram/analyzer/policy.py (command cap,
global scope, supersede/forget targets, quarantine); while engram is paused
(`engram pause`) nothing is analysed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engram.analyzer import grammar, policy, prompt
from engram.analyzer.backends import AnalyzerError, Answer, Backend, Batch, cost
from engram.config import AnalyzerConfig
from engram.errors import EngramError
from engram.store import journal, schema
from engram.store.db import Store, affected
from engram.store.records import MemoryRecord

# What one batch's accounting counts; the last three are the guard's (analyzer/policy.py).
COUNTS: tuple[str, ...] = ("added", "superseded", "forgotten", "duplicates", "rejected")
COUNTS += ("capped", "rescoped", "quarantined")
MAX_FACT_CHARS = 1000  # an analyzer's fact is a sentence or two, not a document
_NONE = re.compile(r"^\W*none\W*$", re.IGNORECASE)


@dataclass
class Unit:
    """The turns one journal row contributes (a row may be split across batches)."""

    row_id: int
    project: str | None
    conversation: str
    turns: list[dict[str, Any]]
    last_part: bool = True


@dataclass
class PlannedBatch:
    project: str | None
    units: list[Unit]

    @property
    def finished_rows(self) -> list[int]:
        return sorted({u.row_id for u in self.units if u.last_part})

    def conversations(self) -> list[prompt.ConversationInput]:
        out: list[prompt.ConversationInput] = []
        for u in self.units:
            if out and out[-1].conversation == u.conversation:
                prev = out[-1]
                out[-1] = prompt.ConversationInput(
                    prev.project, prev.conversation, [*prev.turns, *u.turns]
                )
            else:
                out.append(prompt.ConversationInput(u.project, u.conversation, list(u.turns)))
        return out


@dataclass
class RunReport:
    batches: int = 0
    exchanges: int = 0
    added: list[MemoryRecord] = field(default_factory=list)
    superseded: list[tuple[str, MemoryRecord]] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)
    ignored: int = 0
    failed_batches: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    proposed: list[str] = field(default_factory=list)  # --dry-run: the commands, rendered
    auth_error: str | None = None
    held: list[MemoryRecord] = field(default_factory=list)  # quarantined: `engram review`
    capped: int = 0  # commands over analyzer.max_commands for their conversation
    rescoped: int = 0  # global memories kept in the project scope
    paused: dict[str, str | None] | None = None  # engram is paused: nothing was analysed

    def to_dict(self) -> dict[str, Any]:
        """`engram analyze --json`."""
        return {
            "batches": self.batches,
            "exchanges": self.exchanges,
            "added": [m.to_dict() for m in self.added],
            "superseded": [{"old": o, "new": n.id} for o, n in self.superseded],
            "forgotten": self.forgotten,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "ignored": self.ignored,
            "failed_batches": self.failed_batches,
            "parked": self.parked,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "proposed": self.proposed,
            "held": [m.to_dict() for m in self.held],
            "capped": self.capped,
            "rescoped": self.rescoped,
        }


def plan(rows: Sequence[Any], budget: int) -> list[PlannedBatch]:
    """Group by project (first-seen order), keep capture order, pack under `budget`."""
    by_project: dict[str | None, list[Unit]] = {}
    for row in rows:
        turns = json.loads(row.turns)
        if turns:
            unit = Unit(row.id, row.project, row.conversation, turns)
            by_project.setdefault(row.project, []).extend(_split(unit, budget))
    batches: list[PlannedBatch] = []
    for project, units in by_project.items():
        current: list[Unit] = []
        size = 0
        for unit in units:
            cost_ = _unit_tokens(unit)
            if current and size + cost_ > budget:
                batches.append(PlannedBatch(project, current))
                current, size = [], 0
            current.append(unit)
            size += cost_
        if current:
            batches.append(PlannedBatch(project, current))
    return batches


def _unit_tokens(unit: Unit) -> int:
    return sum(prompt.estimate_tokens(prompt.render_turn(t)) for t in unit.turns) + 20


def _split(unit: Unit, budget: int) -> list[Unit]:
    """A row too big for one call becomes several units; a single turn too big for one
    call is cut in the middle with a visible marker (the model sees that text is gone)."""
    if _unit_tokens(unit) <= budget:
        return [unit]
    parts: list[Unit] = []
    current: list[dict[str, Any]] = []
    size = 0
    for turn in unit.turns:
        t = prompt.estimate_tokens(prompt.render_turn(turn))
        if t > budget:
            turn = {**turn, "text": prompt.trim_middle(turn.get("text", ""), budget * 3)}
            t = prompt.estimate_tokens(prompt.render_turn(turn))
        if current and size + t > budget:
            parts.append(Unit(unit.row_id, unit.project, unit.conversation, current, False))
            current, size = [], 0
        current.append(turn)
        size += t
    parts.append(Unit(unit.row_id, unit.project, unit.conversation, current, True))
    return parts


class Analyzer:
    def __init__(self, store: Store, backend: Backend, settings: AnalyzerConfig) -> None:
        self.store = store
        self.backend = backend
        self.settings = settings

    @property
    def source(self) -> str:
        return f"analyzer:{self.backend.model}"

    def run(
        self,
        *,
        limit: int | None = None,
        dry_run: bool = False,
        on_batch: Callable[[RunReport], None] | None = None,
    ) -> RunReport:
        report = RunReport()
        if self._paused(report):
            return report
        with self.store.write() as session:
            rows = journal.pending(session, limit)
        batches = plan(rows, self.settings.input_budget_tokens)
        blocked: set[str | None] = set()  # a failed batch holds back its project's later ones
        for batch in batches:
            if batch.project in blocked:
                continue
            if self._paused(report):  # `engram pause` during a run stops it between batches
                break
            ok = self._run_batch(batch, report, dry_run)
            if report.auth_error:
                break
            if not ok:
                blocked.add(batch.project)
            if on_batch is not None:
                on_batch(report)
        # Rows whose turns were all empty (nothing to say) are done too.
        return report

    def _paused(self, report: RunReport) -> bool:
        from engram.store import pause

        with self.store.read() as conn:
            period = pause.read_current(conn)
        report.paused = period.to_dict() if period is not None else None
        return period is not None

    def _candidates(
        self, batch: PlannedBatch
    ) -> tuple[list[prompt.CandidateMemory], dict[str, set[str]]]:
        """The memories the model may update: for each conversation, those its own user
        turns retrieve (the guard allows supersede/forget only of those), merged."""
        from engram.store import reader

        scopes = ("global",) if batch.project is None else ("global", batch.project)
        found: dict[str, prompt.CandidateMemory] = {}
        per_conversation: dict[str, set[str]] = {}
        with self.store.read() as conn:
            for conv in batch.conversations():
                words = policy.user_text(conv.turns)[:4000]
                hits = reader.search(conn, words, scopes=scopes, limit=self.settings.candidates)
                per_conversation[conv.conversation] = {h.memory.id for h in hits}
                for h in hits:
                    m = h.memory
                    found.setdefault(m.id, prompt.CandidateMemory(m.id, m.content, m.kind, m.scope))
        return list(found.values())[: max(self.settings.candidates, 0)], per_conversation

    def _run_batch(self, batch: PlannedBatch, report: RunReport, dry_run: bool) -> bool:
        candidates, per_conversation = self._candidates(batch)
        conversations = batch.conversations()
        request = Batch(
            system=prompt.SYSTEM_PROMPT,
            user=prompt.build_user_message(conversations, candidates),
            conversations=[
                {"project": c.project, "conversation": c.conversation, "turns": list(c.turns)}
                for c in conversations
            ],
        )
        started = schema.now_iso()
        report.batches += 1
        try:
            answer = self.backend.analyze(request)
        except AnalyzerError as exc:
            if exc.auth:
                report.auth_error = str(exc)
                return False
            self._fail(batch, str(exc), started, report, None)
            return False
        report.input_tokens += answer.usage.input_tokens + answer.usage.cache_read_tokens
        report.output_tokens += answer.usage.output_tokens
        parsed = grammar.parse_commands(answer.text)
        nothing = any(_NONE.match(line) for line in answer.text.splitlines())
        if not parsed.commands and not nothing:
            why = "empty answer" if not answer.text.strip() else "unparseable answer"
            self._fail(batch, f"{why} from {self.backend.name}", started, report, answer)
            return False
        if dry_run:
            report.proposed.extend(grammar.render_command(c) for c in parsed.commands)
            self._record(batch, answer, started, "dry-run", None, report, parsed, {})
            return True
        guard = policy.for_batch(
            batch.project,
            batch.conversations(),
            candidates,
            per_conversation,
            self.settings.max_commands,
        )
        self._apply(batch, answer, parsed, guard, started, report)
        return True

    def _apply(
        self,
        batch: PlannedBatch,
        answer: Answer,
        parsed: grammar.ParseResult,
        guard: policy.Guard,
        started: str,
        report: RunReport,
    ) -> None:
        from engram.redact import redact
        from engram.store import memories

        provenance = [f"x-{i}" for i in sorted({u.row_id for u in batch.units})]
        counts = dict.fromkeys(COUNTS, 0)
        with self.store.write() as session:
            for cmd in parsed.commands:
                try:
                    with session.begin_nested():
                        decision = guard.decide(cmd)
                        if decision.action == "drop":
                            counts["capped"] += decision.capped
                            report.capped += decision.capped
                            raise EngramError(decision.reason or "not allowed")
                        text = None
                        if cmd.text is not None:
                            text = redact(cmd.text.strip())
                            if "[REDACTED:" in text:
                                raise EngramError("the fact contains a secret")
                            if len(text) > MAX_FACT_CHARS:
                                raise EngramError(f"the fact is over {MAX_FACT_CHARS} characters")
                        counts["rescoped"] += decision.rescoped
                        report.rescoped += decision.rescoped
                        if decision.action == "add":
                            scope = decision.scope or self._scope(cmd.scope, batch.project)
                            self._add(
                                session,
                                cmd,
                                decision,
                                text or "",
                                scope,
                                provenance,
                                report,
                                counts,
                            )
                        elif decision.action == "supersede":
                            _old, new = memories.supersede(
                                session,
                                cmd.target or "",
                                text or "",
                                kind=cmd.kind,
                                source=self.source,
                                provenance=provenance,
                                actor=self.source,
                            )
                            counts["superseded"] += 1
                            report.superseded.append((cmd.target or "", new))
                        else:
                            memories.forget(session, cmd.target or "", actor=self.source)
                            counts["forgotten"] += 1
                            report.forgotten.append(cmd.target or "")
                except EngramError as exc:
                    counts["rejected"] += 1
                    report.rejected.append(f"line {cmd.line}: {exc.message}")
            journal.mark(session, batch.finished_rows, "analyzed")
            report.exchanges += len(batch.finished_rows)
            self._record_in(session, batch, answer, started, "ok", None, report, parsed, counts)

    def _add(
        self,
        session: Any,
        cmd: grammar.Command,
        decision: policy.Decision,
        text: str,
        scope: str,
        provenance: list[str],
        report: RunReport,
        counts: dict[str, int],
    ) -> None:
        """Store an added fact: active, or held for review when the guard found a payload
        shape in it (text a person rejected in review before is not held again)."""
        from engram.store import memories, review

        fields: dict[str, Any] = dict(
            kind=cmd.kind or "fact",
            scope=scope,
            source=self.source,
            provenance=provenance,
            actor=self.source,
        )
        if decision.review:
            if review.rejected_before(session, scope, text):
                raise EngramError("rejected in review before")
            res = review.quarantine(
                session,
                text,
                reasons=[str(f) for f in decision.review],
                supersedes=decision.supersedes,
                **fields,
            )
            if res.created:
                counts["quarantined"] += 1
                report.held.append(res.memory)
                return
        else:
            res = memories.add(session, text, **fields)
            if res.created:
                counts["added"] += 1
                report.added.append(res.memory)
                return
        counts["duplicates"] += 1  # the same fact, active or already held
        report.duplicates += 1

    def _scope(self, scope: str | None, project: str | None) -> str:
        if scope == "global":
            return "global"
        if project is None:
            if scope == "project":
                raise EngramError("a project fact, but the conversation's project is unknown")
            return "global"
        return project

    def _fail(
        self,
        batch: PlannedBatch,
        error: str,
        started: str,
        report: RunReport,
        answer: Answer | None,
    ) -> None:
        from sqlalchemy import update

        from engram.store.models import ExchangeRow

        report.failed_batches += 1
        report.errors.append(error)
        ids = sorted({u.row_id for u in batch.units})
        with self.store.write() as session:
            session.execute(
                update(ExchangeRow)
                .where(ExchangeRow.id.in_(ids))
                .values(attempts=ExchangeRow.attempts + 1, analysis_error=error)
            )
            parked = affected(
                session.execute(
                    update(ExchangeRow)
                    .where(
                        ExchangeRow.id.in_(ids), ExchangeRow.attempts >= self.settings.max_attempts
                    )
                    .values(status="failed")
                )
            )
            report.parked += parked or 0
            self._record_in(session, batch, answer, started, "failed", error, report, None, {})

    def _record(self, *args: Any) -> None:
        with self.store.write() as session:
            self._record_in(session, *args)

    def _record_in(
        self,
        session: Any,
        batch: PlannedBatch,
        answer: Answer | None,
        started: str,
        status: str,
        error: str | None,
        report: RunReport,
        parsed: grammar.ParseResult | None,
        counts: dict[str, int],
    ) -> None:
        from engram.store.models import AnalyzerRun

        usage = answer.usage if answer else None
        model = answer.model if answer else self.backend.model
        usd = cost(usage, model, self.settings.prices) if usage else 0.0
        report.cost_usd += usd
        if parsed is not None:
            report.ignored += parsed.ignored
            report.rejected.extend(f"line {n}: {why}" for n, _line, why in parsed.rejected)
        session.add(
            AnalyzerRun(
                started_at=started,
                ended_at=schema.now_iso(),
                backend=self.backend.name,
                model=model,
                prompt_version=prompt.PROMPT_VERSION,
                project=batch.project,
                exchanges=json.dumps(sorted({u.row_id for u in batch.units})),
                status=status,
                error=error,
                input_tokens=usage.input_tokens if usage else 0,
                output_tokens=usage.output_tokens if usage else 0,
                cache_read_tokens=usage.cache_read_tokens if usage else 0,
                cache_creation_tokens=usage.cache_creation_tokens if usage else 0,
                cost_usd=usd,
                commands=len(parsed.commands) if parsed else 0,
                added=counts.get("added", 0),
                superseded=counts.get("superseded", 0),
                forgotten=counts.get("forgotten", 0),
                duplicates=counts.get("duplicates", 0),
                rejected=counts.get("rejected", 0) + (len(parsed.rejected) if parsed else 0),
                ignored=parsed.ignored if parsed else 0,
                capped=counts.get("capped", 0),
                rescoped=counts.get("rescoped", 0),
                quarantined=counts.get("quarantined", 0),
            )
        )


def analysis_due(store: Store, batch: int, max_wait: float) -> bool:
    """A full batch is pending, or the oldest pending exchange has waited max_wait: the
    rule every capture path uses, so the last turns of a session are never stranded."""
    from engram.store import pause

    with store.read() as conn:
        if pause.read_current(conn) is not None:
            return False  # paused: nothing is analysed
        count, oldest = journal.pending_summary(conn)
    if not count or oldest is None:
        return False
    if count >= batch:
        return True
    return time.time() - schema.parse_iso(oldest).timestamp() >= max_wait


def retry_failed(store: Store) -> int:
    """`engram analyze --retry`: parked batches go back to pending with a fresh count."""
    from sqlalchemy import update

    from engram.store.models import ExchangeRow

    with store.write() as session:
        return (
            affected(
                session.execute(
                    update(ExchangeRow)
                    .where(ExchangeRow.status == "failed", ExchangeRow.analysis_error.is_not(None))
                    .values(status="pending", attempts=0)
                )
            )
            or 0
        )


# -- choosing a backend ----------------------------------------------------------------


def choose(name: str, settings: AnalyzerConfig) -> tuple[Backend | None, str]:
    """(backend or None for capture only, a line saying what was chosen and why)."""
    from engram.analyzer.backends import AnthropicBackend, HeuristicBackend, OpenAIBackend

    if name == "auto":
        if settings.api_key:
            backend, why = choose("anthropic", settings)
            return backend, f"auto -> {why} (an Anthropic key is configured)"
        backend, why = choose("heuristic", settings)
        return backend, f"auto -> {why} (no ANTHROPIC_API_KEY: offline rules)"
    if name == "none":
        return None, "none (capture only)"
    if name == "heuristic":
        return HeuristicBackend(), "heuristic"
    common: dict[str, Any] = dict(
        timeout=settings.timeout,
        retries=settings.retries,
        max_output_tokens=settings.max_output_tokens,
    )
    if name == "anthropic":
        if not settings.api_key:
            raise EngramError(
                "the anthropic analyzer needs a key: set ANTHROPIC_API_KEY or "
                "analyzer.api_key (or use --analyzer heuristic)"
            )
        return (
            AnthropicBackend(
                api_key=settings.api_key, model=settings.model, base_url=settings.base_url, **common
            ),
            f"anthropic ({settings.model})",
        )
    if name == "openai":
        return (
            OpenAIBackend(
                api_key=settings.openai_api_key,
                model=settings.openai_model,
                base_url=settings.openai_base_url,
                **common,
            ),
            f"openai ({settings.openai_model} at {settings.openai_base_url or 'api.openai.com'})",
        )
    raise EngramError(f"unknown analyzer {name!r} (auto, anthropic, openai, heuristic, none)")


def describe(report: RunReport) -> list[str]:
    """One line per change for logs and the terminal. Memory text is redacted again
    here: logs are shared and kept, and a log line must never be where a secret that
    slipped past an older redactor resurfaces."""
    from engram.redact import redact

    lines = []
    for m in report.added:
        lines.append(f"   stored: {redact(m.content)} ({m.id})")
    for old, new in report.superseded:
        lines.append(f"   updated: {redact(new.content)} ({new.id}, replaces {old})")
    for old in report.forgotten:
        lines.append(f"   forgot: {old}")
    for m in report.held:
        lines.append(f"   held for review: {redact(m.content)} ({m.id}; `engram review`)")
    return lines


def make_daemon_hook(
    store: Store, backend: Backend, settings: AnalyzerConfig
) -> Callable[[Any], None]:
    """The watcher's analyze job: run, then report in the original guide's style."""
    analyzer = Analyzer(store, backend, settings)
    warned_auth: list[bool] = [False]

    def hook(reporter: Any) -> None:
        from engram.store import pause

        with store.read() as conn:
            if pause.read_current(conn) is not None:
                return  # paused: the pending exchanges wait for `engram resume`
            pending, _oldest = journal.pending_summary(conn)
        if not pending:
            return
        reporter.event(
            "analyze_start", f"Running analyzer on {pending} exchanges...", pending=pending
        )
        started = time.monotonic()
        report = analyzer.run()
        if report.auth_error:
            if not warned_auth[0]:
                reporter.error("analyzer_auth", report.auth_error + "; capture continues")
                warned_auth[0] = True
            return
        warned_auth[0] = False
        for error in report.errors:
            reporter.warn("analyze_failed", f"analyzer batch failed: {error} (will retry)")
        reporter.event(
            "analyzed",
            f"   -> {len(report.added)} new, {len(report.superseded)} updated, "
            f"{len(report.forgotten)} forgotten, {report.duplicates} already known"
            + (f", {len(report.held)} held for review" if report.held else "")
            + (f", {report.capped} over the command limit" if report.capped else "")
            + " "
            f"({report.input_tokens:,} tokens in, ${report.cost_usd:.4f}, "
            f"{time.monotonic() - started:.1f}s)",
            added=[m.id for m in report.added],
            held=[m.id for m in report.held],
            capped=report.capped,
            rescoped=report.rescoped,
            exchanges=report.exchanges,
            input_tokens=report.input_tokens,
            output_tokens=report.output_tokens,
            cost_usd=round(report.cost_usd, 6),
            failed_batches=report.failed_batches,
        )
        for line in describe(report):
            reporter.event("memory", line, level="success")

    return hook
