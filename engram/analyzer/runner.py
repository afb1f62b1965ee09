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

from engram.analyzer import grammar, policy, prompt, validate
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
    # --dry-run: each proposed command with what validation decided and why
    decisions: list[dict[str, Any]] = field(default_factory=list)
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
            "decisions": self.decisions,
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
    """`embedder`: recall's embedder (anything with `embed(texts)`), used to fold a
    proposed fact into an active memory that says it already; None: lexical overlap."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        settings: AnalyzerConfig,
        *,
        embedder: validate.Embedder | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.settings = settings
        self.near = validate.NearDuplicates(embedder)

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
        budget = self.settings.input_budget_tokens
        budget = min(budget, getattr(self.backend, "max_input_tokens", budget))
        batches = plan(rows, budget)
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
            candidate_ids=[c.id for c in candidates],
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
        verdicts = self._judge(request, parsed.commands, candidates, batch.project)
        guard = policy.for_batch(
            batch.project, conversations, candidates, per_conversation, self.settings.max_commands
        )
        if dry_run:
            for cmd, verdict in zip(parsed.commands, verdicts, strict=True):
                line = grammar.render_command(cmd)
                decision, reason, shown = verdict.decision, verdict.reason, verdict.render()
                if decision == "keep":  # then what the guard would make of it
                    decision, because = policy.describe(guard.decide(cmd))
                    reason = because or ""
                    shown = decision + (f": {because}" if because else "")
                report.proposed.append(f"{line}  # {shown}")
                report.decisions.append(
                    {
                        "command": line,
                        "decision": decision,
                        "reason": reason,
                        "target": verdict.target,
                    }
                )
            self._record(batch, answer, started, "dry-run", None, report, parsed, {})
            return True
        self._apply(batch, answer, parsed, verdicts, guard, started, report)
        return True

    def _judge(
        self,
        request: Batch,
        commands: Sequence[grammar.Command],
        candidates: Sequence[prompt.CandidateMemory],
        project: str | None,
    ) -> list[validate.Verdict]:
        """What validation decides for each command (see engram.analyzer.validate)."""
        from engram.store import reader

        said = validate.batch_text(request.conversations)
        strict = bool(getattr(self.backend, "strict", False))
        known = "\n".join(c.content for c in candidates)
        scopes = ("global",) if project is None else ("global", project)
        offered = [validate.Existing(c.id, c.content) for c in candidates]
        kept: list[tuple[int, str]] = []
        verdicts: list[validate.Verdict] = []
        for cmd in commands:
            if cmd.text is None:
                verdicts.append(validate.KEEP)
                continue
            verdict = validate.judge_text(cmd.text, said, strict=strict, known=known)
            if verdict.decision == "keep" and cmd.action == "add":
                with self.store.read() as conn:
                    hits = reader.search(conn, cmd.text, scopes=scopes, limit=5)
                pool = {e.id: e for e in offered}
                pool.update(
                    {h.memory.id: validate.Existing(h.memory.id, h.memory.content) for h in hits}
                )
                verdict = self.near.find(cmd.text, list(pool.values())) or verdict
                if verdict.decision == "keep":
                    earlier = self.near.find(
                        cmd.text, [validate.Existing(f"line {n}", t) for n, t in kept]
                    )
                    if earlier is not None:
                        verdict = validate.Verdict("reject", f"repeats {earlier.target}")
                    else:
                        kept.append((cmd.line, cmd.text))
            verdicts.append(verdict)
        return verdicts

    def _apply(
        self,
        batch: PlannedBatch,
        answer: Answer,
        parsed: grammar.ParseResult,
        verdicts: Sequence[validate.Verdict],
        guard: policy.Guard,
        started: str,
        report: RunReport,
    ) -> None:
        from engram.redact import redact
        from engram.store import memories

        provenance = [f"x-{i}" for i in sorted({u.row_id for u in batch.units})]
        counts = dict.fromkeys(COUNTS, 0)
        with self.store.write() as session:
            for cmd, verdict in zip(parsed.commands, verdicts, strict=True):
                if verdict.decision == "reject":
                    counts["rejected"] += 1
                    shown = grammar.fold_text(cmd.text or "")[:80]
                    report.rejected.append(f"line {cmd.line}: {verdict.reason}: {shown!r}")
                    continue
                if verdict.decision == "fold" and verdict.target:
                    memories.extend_provenance(session, verdict.target, provenance)
                    counts["duplicates"] += 1
                    report.duplicates += 1
                    continue
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
        if answer is not None and answer.cost_usd is not None:
            usd = answer.cost_usd
        else:
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


BACKENDS = ("auto", "anthropic", "claude-code", "local", "openai", "heuristic", "none")


def choose(
    name: str, settings: AnalyzerConfig, *, proxy_listen: Sequence[str] = ()
) -> tuple[Backend | None, str]:
    """(backend or None for capture only, a line saying what was chosen and why).

    `proxy_listen`: where engram's own proxy listens, so the claude-code backend never
    sends its traffic through it.
    """
    if name == "auto":
        return _auto(settings, proxy_listen)
    if name == "none":
        return None, "none (capture only)"
    return _named(name, settings, proxy_listen)


def _named(name: str, settings: AnalyzerConfig, proxy_listen: Sequence[str]) -> tuple[Backend, str]:
    from engram.analyzer.backends import AnthropicBackend, HeuristicBackend, OpenAIBackend

    if name == "heuristic":
        return HeuristicBackend(), "heuristic"
    if name == "claude-code":
        return _claude_code(
            settings, proxy_listen
        ), f"claude-code (claude -p --model {settings.claude_model})"
    if name == "local":
        backend = _local(settings)
        return backend, f"local ({backend.path.name}, {backend.threads} threads)"
    common: dict[str, Any] = dict(
        timeout=settings.timeout,
        retries=settings.retries,
        max_output_tokens=settings.max_output_tokens,
    )
    if name == "anthropic":
        if not settings.api_key:
            raise EngramError(
                "the anthropic analyzer needs a key: set ANTHROPIC_API_KEY or "
                "analyzer.api_key (or use --analyzer claude-code, local or heuristic)"
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
    raise EngramError(f"unknown analyzer {name!r} (one of: {', '.join(BACKENDS)})")


def _auto(settings: AnalyzerConfig, proxy_listen: Sequence[str]) -> tuple[Backend, str]:
    """API key -> anthropic; else Claude Code on PATH -> claude-code (the user's
    subscription); else an installed local model -> local; else the heuristic."""
    import importlib.util
    import shutil

    from engram.analyzer import models
    from engram.analyzer.backends import HeuristicBackend

    if settings.api_key:
        backend, why = _named("anthropic", settings, proxy_listen)
        return backend, f"auto -> {why}: an Anthropic API key is configured"
    claude = shutil.which(settings.claude_command)
    if claude:
        backend, why = _named("claude-code", settings, proxy_listen)
        return (
            backend,
            f"auto -> {why}: no API key, and Claude Code is installed ({claude}); it uses "
            "your Claude login",
        )
    model = models.default_model(settings.local_model)
    if model is not None and model.is_file() and importlib.util.find_spec("xllamacpp"):
        backend, why = _named("local", settings, proxy_listen)
        return (
            backend,
            f"auto -> {why}: no API key or Claude Code; a local model is installed",
        )
    hint = (
        "`engram models fetch` installs a local model"
        if importlib.util.find_spec("xllamacpp")
        else "pip install 'engram-tap[local]' and `engram models fetch` add a local model"
    )
    return (
        HeuristicBackend(),
        f"auto -> heuristic: no API key, no Claude Code, no local model ({hint})",
    )


def _claude_code(settings: AnalyzerConfig, proxy_listen: Sequence[str]) -> Backend:
    from engram.analyzer.backend_claude_code import ClaudeCodeBackend
    from engram.paths import analyzer_workdir

    return ClaudeCodeBackend(
        model=settings.claude_model,
        command=settings.claude_command,
        workdir=analyzer_workdir(),
        timeout=settings.timeout,
        retries=settings.retries,
        engram_listen=proxy_listen,
    )


def _local(settings: AnalyzerConfig) -> Any:
    from engram.analyzer import models
    from engram.analyzer.backend_local import LocalBackend

    path = models.default_model(settings.local_model)
    if path is None:
        raise EngramError(
            f"the local analyzer has no model: none in {models.models_dir()} and "
            "analyzer.local_model is unset",
            hint="engram models fetch 1.5b (or 0.5b), or set analyzer.local_model to a GGUF file",
        )
    return LocalBackend(
        model_path=path,
        threads=settings.local_threads,
        context=settings.local_context,
        max_output_tokens=min(settings.max_output_tokens, 512),
    )


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


class Backoff:
    """After a failed run, the next waits: 15 s, doubling to 10 minutes; a good run resets.

    The watcher polls every few seconds; without this, a rate-limited or logged-out
    backend would be called (and a `claude -p` started) on every poll, and a batch would
    burn through `analyzer.max_attempts` in a minute.
    """

    def __init__(self, base: float = 15.0, cap: float = 600.0) -> None:
        self.base, self.cap = base, cap
        self.failures = 0
        self.until = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self.until

    def failed(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        self.until = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.until = 0, 0.0


def make_daemon_hook(
    store: Store,
    backend: Backend,
    settings: AnalyzerConfig,
    *,
    embedder: validate.Embedder | None = None,
) -> Callable[[Any], None]:
    """The watcher's analyze job: run, then report in the original guide's style."""
    analyzer = Analyzer(store, backend, settings, embedder=embedder)
    warned_auth: list[bool] = [False]
    backoff = Backoff()

    def hook(reporter: Any) -> None:
        from engram.store import pause

        if not backoff.ready():
            return
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
            delay = backoff.failed()
            if not warned_auth[0]:
                reporter.error(
                    "analyzer_auth",
                    f"{report.auth_error}; capture continues, analysis retries in {delay:.0f}s",
                )
                warned_auth[0] = True
            return
        warned_auth[0] = False
        if report.failed_batches:
            delay = backoff.failed()
            for error in report.errors:
                reporter.warn(
                    "analyze_failed", f"analyzer batch failed: {error} (retry in {delay:.0f}s)"
                )
        else:
            backoff.succeeded()
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
