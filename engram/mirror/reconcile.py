"""One page of the sync job: bring each memory's copy in MuninnDB in line with its
local state, with as few calls as possible.

For each memory the gap between what it is locally and what MuninnDB holds for it
(`mirror_ids`) decides the calls:
- active locally, nothing (or a forgotten copy) in MuninnDB -> `muninn_remember`;
  a copy forgotten less than 6.5 days ago with the same text -> `muninn_restore`
  (MuninnDB restores within 7 days; on refusal, remember again, which creates a new id);
- active with other text or in another vault (edit, `muninn.vault` changed) -> forget
  the old copy, then remember the new text;
- superseded -> a `supersedes` link from the memory that replaces it (following the
  chain past replacements that were replaced in turn), then `muninn_forget`; the link
  waits while that memory is still queued;
- forgotten -> `muninn_forget`. A forget skips a MuninnDB memory another local memory
  still uses (content de-duplication can map two local memories to one).

Crash safety: what a call did is recorded when the page commits. Remembers write their
intent first (engram/mirror/sync.py); forgets and restores of a recorded copy first mark
it `in_doubt` (one write per phase for the whole page). A sync killed, or left without an
answer, after MuninnDB applied the call would otherwise leave the old state on record:
a copy recorded active that MuninnDB had forgotten was then taken as "already there"
once the memory was restored (or edited back) locally, and lost for good. A copy in
doubt is forgotten again if it is not wanted (forget is repeatable), and restored if it
is (a refusal because it is active after all falls back to a remember, which MuninnDB's
content de-duplication answers with the same id).

Three phases per page: single calls (repairs, forgets of old copies, restores), then
every remember batched per vault (<= 50 items, < 1 MiB, never the same text twice in one
call since MuninnDB does not de-duplicate within a batch; one item alone goes as a single
call with its op_id), then links and forgets of retired memories, which may need the ids
the batches produced. Intents are written before the batches are sent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from engram.mirror import mapping
from engram.mirror.client import (
    MuninnAuthError,
    MuninnClient,
    MuninnError,
    MuninnProtocolError,
    MuninnToolError,
    MuninnUnavailable,
    Remembered,
    encode,
)
from engram.mirror.vault import vault_for_scope
from engram.store import outbox, reader, schema
from engram.store.outbox import Mirror, Outcome, Target
from engram.store.schema import MirrorState

if TYPE_CHECKING:
    from engram.config import MuninnConfig
    from engram.store.db import Store

BATCH_BODY = 900_000  # stay clear of MuninnDB's 1 MiB request limit
BAD_ANSWERS = 3  # unreadable answers in a row that stop a run (wrong URL, broken proxy)


@dataclass
class MirrorSettings:
    vault: str | None = None
    global_vault: str = "engram-global"
    batch: int = 50
    page: int = 200
    max_backoff: float = 300.0
    max_attempts: int = 8
    restore_days: float = 6.5

    @classmethod
    def from_config(cls, m: MuninnConfig) -> MirrorSettings:
        return cls(
            vault=m.vault,
            global_vault=m.global_vault,
            batch=max(1, min(50, m.batch)),
            max_backoff=m.max_backoff,
            max_attempts=max(1, m.max_attempts),
        )

    def vault_for(self, scope: str) -> str:
        return vault_for_scope(scope, self.vault, self.global_vault)


@dataclass
class SyncReport:
    memories: int = 0  # memories settled (done or failed)
    remembered: int = 0
    deduplicated: int = 0  # remembers MuninnDB answered with an existing id
    restored: int = 0
    forgotten: int = 0
    linked: int = 0
    failed: int = 0
    retrying: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)  # per-memory refusals (first 20)
    stopped: str | None = None  # why the run stopped early (unreachable, 401)
    auth_error: bool = False
    skipped: str | None = None  # why the run did not start (backoff, another sync)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Stop(Exception):
    """MuninnDB cannot be used right now (unreachable, 401, garbage): end the run."""

    def __init__(self, error: MuninnError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Work:
    """One memory during a page: what is wanted and what MuninnDB holds so far."""

    target: Target
    want: tuple[str, str] | None  # (vault, content hash) when it should be active
    mirror: Mirror
    touched: bool = False  # the mirror state changed and must be committed
    item: dict[str, Any] | None = None
    op_id: str | None = None
    outcome: Outcome | None = None

    @property
    def memory_id(self) -> str:
        return self.target.memory_id

    @property
    def hash(self) -> str:
        return self.want[1] if self.want else ""

    def settle(self, status: str, error: str | None = None) -> None:
        self.outcome = Outcome(self.target, status, error, self.mirror if self.touched else None)


class PageReconciler:
    def __init__(
        self,
        store: Store,
        client: MuninnClient,
        settings: MirrorSettings,
        install: str,
        report: SyncReport,
        now: str,
    ) -> None:
        self.store, self.client, self.settings = store, client, settings
        self.install, self.report, self.now = install, report, now
        self.works: list[_Work] = []
        self._claims: dict[tuple[str, str], str] = {}  # made active in this page
        self._released: set[str] = set()  # memories whose copy this page retired
        self._bad_answers = 0

    def run(self, targets: list[Target], force: bool) -> tuple[list[Outcome], Stop | None]:
        for t in targets:
            if not force and t.backoff_until and t.backoff_until > self.now:
                self.report.deferred += 1
                continue
            loc = t.local
            want = (
                (self.settings.vault_for(loc["scope"]), loc["content_hash"])
                if loc is not None and loc["status"] == "active"
                else None
            )
            self.works.append(_Work(t, want, Mirror(**t.mirror.__dict__)))
        stop = None
        try:
            self._doubt([w for w in self.works if self._repair(w)])
            for w in self.works:
                self._guard(w, functools.partial(self._prepare, w))
            self._remember_all([w for w in self.works if w.item is not None and not w.outcome])
            gone = [w for w in self.works if w.want is None and w.outcome is None]
            successors = self._successors(gone)
            self._doubt([w for w in gone if w.mirror.live and not self._waits(w, successors)])
            for w in gone:
                self._guard(w, functools.partial(self._retire, w, successors))
        except (Stop, MuninnUnavailable, MuninnAuthError) as exc:
            stop = exc if isinstance(exc, Stop) else Stop(exc)
            for w in self.works:
                if w.outcome is None and (w.touched or w.item is not None):
                    w.settle("wait", str(stop.error))
        return [w.outcome for w in self.works if w.outcome is not None], stop

    def _guard(self, w: _Work, step: Callable[[], None]) -> None:
        """Run one memory's step; sort its failure into failed / retry / stop the run."""
        try:
            step()
        except MuninnToolError as exc:
            self._fail(w, str(exc))
        except MuninnProtocolError as exc:
            self.report.retrying += 1
            w.settle("retry", str(exc))
            self._bad_answers += 1
            if self._bad_answers >= BAD_ANSWERS:  # not one memory's problem: stop, back off
                raise Stop(exc) from None
        except (MuninnUnavailable, MuninnAuthError) as exc:
            w.settle("wait", str(exc))
            raise Stop(exc) from None

    def _fail(self, w: _Work, message: str) -> None:
        self.report.failed += 1
        self.report.memories += 1
        if len(self.report.errors) < 20:
            self.report.errors.append(f"{w.memory_id}: {message}")
        w.item = None
        w.settle("failed", message)

    def _done(self, w: _Work, note: str | None = None) -> None:
        self.report.memories += 1
        self._bad_answers = 0
        w.settle("done", note)

    def _doubt(self, works: list[_Work]) -> None:
        """Mark copies about to be forgotten or restored as in doubt, durably, before
        the calls (see the module docstring)."""
        works = [w for w in works if w.mirror.state != MirrorState.IN_DOUBT]
        for w in works:
            w.mirror.state, w.touched = MirrorState.IN_DOUBT, True
        outbox.mark_in_doubt(self.store, [w.memory_id for w in works])

    # -- phase 1: single calls ---------------------------------------------------------

    def _prepare(self, w: _Work) -> None:
        """Repair a lost write, retire an outdated copy, restore; leave a remember for
        the batch phase when one is needed."""
        m = w.mirror
        if m.intent is not None:
            self._replay_intent(w)
        if w.want is None:
            return
        vault, chash = w.want
        if m.active and (m.vault, m.content_hash) == w.want:
            self._claims[(vault, m.muninn_id or "")] = w.memory_id
            return self._done(w)
        repair = self._repair(w)
        if repair == "forget":  # edited, or its vault changed: the old copy goes first
            self._forget(w, m.vault or "", m.muninn_id or "")
            m.state, m.forgotten_at, w.touched = MirrorState.FORGOTTEN, self.now, True
            self._released.add(w.memory_id)
        elif repair == "restore":
            try:
                restored = self.client.restore(vault, m.muninn_id or "")
            except MuninnToolError:
                pass  # purged, or active after all (in doubt): remember it below
            else:
                self.report.restored += 1
                return self._activate(w, vault, restored)
        loc = w.target.local or {}
        problem = mapping.too_large(loc["content"])
        if problem:
            return self._fail(w, problem)
        w.item = mapping.remember_item(loc)
        w.op_id = w.op_id or f"engram-{self.install}-{w.target.upto}-{chash[:12]}"

    def _repair(self, w: _Work) -> str | None:
        """The call phase 1 makes on the copy on record of a memory that is wanted:
        "forget" one that holds other text or sits in another vault, "restore" one with
        the wanted text that was forgotten recently (or may have been)."""
        m = w.mirror
        if w.want is None or m.muninn_id is None:
            return None
        same = (m.vault, m.content_hash) == w.want
        if m.live and not same:
            return "forget"
        if same and m.state == MirrorState.IN_DOUBT:
            return "restore"
        if same and m.state == MirrorState.FORGOTTEN and m.forgotten_at:
            return "restore" if self._restorable(m.forgotten_at) else None
        return None

    def _replay_intent(self, w: _Work) -> None:
        """A remember whose answer was lost: keep it if it is still wanted, else find the
        copy MuninnDB may have made (same op_id and text) and forget it."""
        m = w.mirror
        intent = m.intent or {}
        if w.want == (intent.get("vault"), intent.get("hash")):
            w.op_id = intent.get("op_id")
            return
        vault = str(intent.get("vault"))
        got = self.client.remember(
            vault, {"content": intent.get("content", "")}, op_id=intent.get("op_id")
        )
        if got.id and not (m.active and (m.vault, m.muninn_id) == (vault, got.id)):
            self._forget(w, vault, got.id)
        m.intent, w.touched = None, True

    def _activate(self, w: _Work, vault: str, muninn_id: str) -> None:
        w.mirror = Mirror(vault, muninn_id, w.hash, MirrorState.ACTIVE, None, None)
        w.touched, w.item = True, None
        self._claims[(vault, muninn_id)] = w.memory_id
        self._released.discard(w.memory_id)
        self._done(w)

    def _restorable(self, forgotten_at: str) -> bool:
        age = schema.parse_iso(self.now) - schema.parse_iso(forgotten_at)
        return age < timedelta(days=self.settings.restore_days)

    def _forget(self, w: _Work, vault: str, muninn_id: str) -> None:
        if self._claimed(vault, muninn_id, w.memory_id):
            return
        try:
            self.client.forget(vault, muninn_id)
        except MuninnToolError as exc:
            if not exc.not_found:  # already gone is what we wanted
                raise
        self.report.forgotten += 1

    def _claimed(self, vault: str, muninn_id: str, besides: str) -> bool:
        owner = self._claims.get((vault, muninn_id))
        if owner is not None and owner != besides:
            return True
        with self.store.read() as conn:
            others = outbox.owners(conn, vault, muninn_id, besides)
        return any(mid not in self._released for mid in others)

    # -- phase 2: remembers, batched per vault -----------------------------------------

    def _remember_all(self, works: list[_Work]) -> None:
        if not works:
            return
        intents = {}
        by_vault: dict[str, list[_Work]] = {}
        for w in works:
            vault = w.want[0] if w.want else ""
            w.mirror.intent = {
                "vault": vault,
                "hash": w.hash,
                "op_id": w.op_id,
                "content": (w.item or {})["content"],
            }
            intents[w.memory_id] = (vault, w.mirror.intent)
            by_vault.setdefault(vault, []).append(w)
        outbox.write_intents(self.store, intents)
        for vault, group in by_vault.items():
            for chunk in self._chunks(group):
                for w, got in zip(chunk, self._send(vault, chunk), strict=True):
                    self._guard(w, functools.partial(self._remembered, w, vault, got))

    def _chunks(self, works: list[_Work]) -> Iterator[list[_Work]]:
        rest = list(works)
        while rest:
            chunk: list[_Work] = []
            later: list[_Work] = []
            hashes: set[str] = set()
            size = 0
            for w in rest:
                n = len(encode(w.item)) + 64
                if (
                    len(chunk) >= self.settings.batch
                    or (chunk and size + n > BATCH_BODY)
                    or (w.hash in hashes)
                ):
                    later.append(w)
                    continue
                chunk.append(w)
                hashes.add(w.hash)
                size += n
            yield chunk
            rest = later

    def _send(self, vault: str, chunk: list[_Work]) -> list[Remembered | MuninnError]:
        """One batch call, or single calls with op_id for one item or when the server
        refused the whole batch (so the bad item fails alone)."""
        if len(chunk) > 1:
            try:
                return list(self.client.remember_batch(vault, [w.item or {} for w in chunk]))
            except (MuninnToolError, MuninnProtocolError):
                pass
        out: list[Remembered | MuninnError] = []
        for w in chunk:
            try:
                out.append(self.client.remember(vault, w.item or {}, op_id=w.op_id))
            except (MuninnToolError, MuninnProtocolError) as exc:
                out.append(exc)
        return out

    def _remembered(self, w: _Work, vault: str, got: Remembered | MuninnError) -> None:
        if isinstance(got, MuninnError):
            if isinstance(got, MuninnToolError):
                w.mirror.intent, w.touched = None, True  # refused: nothing was created
            raise got
        if got.error is not None:
            w.mirror.intent, w.touched = None, True
            raise MuninnToolError(f"MuninnDB refused it: {got.error}")
        if got.hint == "duplicate_content" or got.idempotent:
            self.report.deduplicated += 1
        self.report.remembered += 1
        self._activate(w, vault, got.id or "")

    # -- phase 3: superseded and forgotten memories ------------------------------------

    def _successors(self, gone: list[_Work]) -> dict[str, tuple[Mirror | None, bool]]:
        """For each superseded memory with a copy in MuninnDB: the mirror of the memory
        that replaces it now, and whether that one is still queued."""
        here = {w.memory_id: w for w in self.works}
        out: dict[str, tuple[Mirror | None, bool]] = {}
        with self.store.read() as conn:
            for w in gone:
                sid = (w.target.local or {}).get("superseded_by")
                if not sid or not w.mirror.live:
                    continue
                row: tuple[Any, Any] = (None, None)
                for _hop in range(10):
                    other = here.get(sid)
                    loc = other.target.local if other else None
                    row = (
                        (loc["status"], loc["superseded_by"])
                        if loc
                        else reader.status_of(conn, sid)
                    ) or (None, None)
                    if row[0] != "superseded" or not row[1]:
                        break
                    sid = row[1]
                other = here.get(sid)
                if row[0] != "active":
                    out[w.memory_id] = (None, False)
                elif other is not None and other.outcome is not None:
                    out[w.memory_id] = (other.mirror, False)
                else:
                    out[w.memory_id] = (
                        outbox.load_mirrors(conn, [sid]).get(sid),
                        bool(outbox.has_pending(conn, [sid])),
                    )
        return out

    @staticmethod
    def _link_to(w: _Work, successors: dict[str, tuple[Mirror | None, bool]]) -> Mirror | None:
        """The active copy, in the same vault, of the memory that replaces this one."""
        new, _queued = successors.get(w.memory_id, (None, False))
        if new is not None and new.active and new.vault == w.mirror.vault:
            return new
        return None

    def _waits(self, w: _Work, successors: dict[str, tuple[Mirror | None, bool]]) -> bool:
        """The replacement is still queued: retire this copy once it can be linked."""
        queued = successors.get(w.memory_id, (None, False))[1]
        return queued and self._link_to(w, successors) is None

    def _retire(self, w: _Work, successors: dict[str, tuple[Mirror | None, bool]]) -> None:
        m = w.mirror
        if not m.live:
            return self._done(w)
        if self._waits(w, successors):
            self.report.deferred += 1
            return None  # the successor is not in MuninnDB yet: next run
        note = None
        new = self._link_to(w, successors)
        if new is not None:
            try:
                self.client.link(
                    m.vault or "", new.muninn_id or "", m.muninn_id or "", "supersedes"
                )
                self.report.linked += 1
            except MuninnToolError as exc:
                note = f"supersedes link not made: {exc}"
        self._forget(w, m.vault or "", m.muninn_id or "")
        m.state, m.forgotten_at, w.touched = MirrorState.FORGOTTEN, self.now, True
        self._released.add(w.memory_id)
        self._done(w, note)
