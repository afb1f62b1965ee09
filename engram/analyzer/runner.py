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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engram.analyzer import grammar, policy, prompt, validate
from engram.analyzer.backends import AnalyzerError, Answer, Backend, Batch, cost
from engram.analyzer.batching import PlannedBatch, plan
from engram.config import AnalyzerConfig
from engram.errors import EngramError
from engram.store import journal, runs, schema
from engram.store.db import Store
from engram.store.records import MemoryRecord

# What one batch's accounting counts; the last three are the guard's (analyzer/policy.py).
COUNTS: tuple[str, ...] = ("added", "superseded", "forgotten", "duplicates", "rejected")
COUNTS += ("capped", "rescoped", "quarantined")
MAX_FACT_CHARS = 1000  # an analyzer's fact is a sentence or two, not a document
_NONE = re.compile(r"^\W*none\W*$", re.IGNORECASE)


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
            for line, why in answer.dropped:  # set aside by the backend itself
                report.proposed.append(f"{line}  # reject: {why}")
                report.decisions.append(
                    {"command": line, "decision": "reject", "reason": why, "target": None}
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
        report.failed_batches += 1
        report.errors.append(error)
        ids = sorted({u.row_id for u in batch.units})
        with self.store.write() as session:
            report.parked += journal.fail_analysis(session, ids, error, self.settings.max_attempts)
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
        runs.insert(
            session,
            started_at=started,
            ended_at=schema.now_iso(),
            backend=self.backend.name,
            model=model,
            prompt_version=getattr(self.backend, "prompt_version", prompt.PROMPT_VERSION),
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
