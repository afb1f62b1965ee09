"""The composition root: every part of engram is built here, from one `Config`.

The CLI, the proxy and `engram run`, the mitmproxy addon, the daemon, the MCP server and
the web UI get their parts from a `Runtime` instead of constructing them, so how a part
is wired (which analyzer backend, whether recall also asks MuninnDB, which capture sink
the proxy writes to) is decided in one place, and the core packages never import the
edges (`make lint` checks it).

Everything is built lazily: `engram list` must start in under 300 ms, so this module
imports nothing heavy at import time and a `Runtime` that is never asked for recall never
loads an embedder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engram.analyzer.backends import Backend
    from engram.analyzer.runner import Analyzer
    from engram.config import Config
    from engram.journaling import CapturePolicy
    from engram.recall.embedder import Embedder
    from engram.recall.remote import RemoteSource
    from engram.recall.service import Recaller
    from engram.sources.flowfile import FlowFileWatcher
    from engram.sources.proxy import Proxy
    from engram.sources.recall_step import RecallStep
    from engram.sources.scheduler import Job, PollSource, Reporter, Scheduler
    from engram.sources.transcripts import TranscriptFollower
    from engram.sources.watcher import Watcher
    from engram.store.db import Store

# A job the scheduler runs: it reports through the reporter it is given.
JobFn = Callable[["Reporter"], Any]


class Runtime:
    """The parts of one engram process, built from one Config on first use."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._store: Store | None = None
        self._recaller: Recaller | None = None

    @classmethod
    def load(cls, config_path: str | None = None, db_path: str | None = None) -> Runtime:
        """Defaults < config file < environment < these flags."""
        from engram import config

        cfg = config.load(config_path)
        cfg.override("store.path", db_path)
        return cls(cfg)

    # -- the store --------------------------------------------------------------------

    @property
    def db_path(self) -> Path:
        from engram.paths import default_db_path

        return Path(self.config.store.path or default_db_path()).expanduser()

    @property
    def store(self) -> Store:
        if self._store is None:
            from engram.store.db import Store

            self._store = Store(self.db_path, self.config.store.busy_timeout_ms)
        return self._store

    # -- recall -----------------------------------------------------------------------

    def remote_recall_source(self) -> RemoteSource | None:
        """MuninnDB as a second recall source, when `recall.sources` asks for it."""
        if "muninn" not in self.config.recall.sources:
            return None
        from engram.mirror.recall import MuninnSource

        return MuninnSource.create(self.config)

    def recaller(self, *, background: bool = True) -> Recaller:
        """This process's recall (one per runtime: it holds the vector index)."""
        if self._recaller is None:
            from engram.recall.service import Recaller

            self._recaller = Recaller(
                self.store,
                self.config,
                background=background,
                remote=self.remote_recall_source(),
            )
        return self._recaller

    def proxy_recall(
        self, project_hint: str | None, defer: Callable[[Callable[[], None]], Any]
    ) -> RecallStep:
        """The proxy's and the addon's recall step (request -> the block to inject and
        the decision's audit), with the proxy's budgets."""
        from engram.sources.recall_step import make_recall

        p = self.config.proxy
        return make_recall(
            self.recaller(),
            project_hint,
            defer,
            budget_ms=p.recall_budget_ms,
            first_request_budget_ms=p.first_request_budget_ms,
        )

    # -- the analyzer -----------------------------------------------------------------

    def analyzer_backend(self, name: str | None = None) -> tuple[Backend | None, str]:
        """(the analyzer backend, or None for capture only; a line saying what was chosen
        and why). `name` overrides `analyzer.backend` (a --analyzer flag). Backends:
        anthropic, claude-code (kept away from this process's proxy), local, openai,
        heuristic; `auto` picks one."""
        from engram.analyzer.choose import choose

        self.config.override("analyzer.backend", name)
        return choose(
            self.config.analyzer.backend,
            self.config.analyzer,
            proxy_listen=[self.config.proxy.listen],
        )

    def formation_embedder(self) -> Embedder | None:
        """The embedder the analyzer's validation folds restated facts with: recall's
        own (one model in memory per process), None when recall has none."""
        from engram.recall.embedder import EmbedderError

        try:
            return self.recaller().embedder
        except EmbedderError:
            return None

    def analyzer_run(self, backend: Backend) -> Analyzer:
        """A one-off analyzer run (`engram analyze`)."""
        from engram.analyzer.runner import Analyzer

        return Analyzer(
            self.store, backend, self.config.analyzer, embedder=self.formation_embedder()
        )

    def analyzer(self, name: str | None = None) -> tuple[JobFn | None, str]:
        """(the analyze job, or None for capture only; a line saying what was chosen and
        why). `name` overrides `analyzer.backend` (a --analyzer flag)."""
        from engram.analyzer.schedule import make_daemon_hook

        backend, label = self.analyzer_backend(name)
        if backend is None:
            return None, label
        hook = make_daemon_hook(
            self.store, backend, self.config.analyzer, embedder=self.formation_embedder()
        )
        return hook, label

    # -- the mirror -------------------------------------------------------------------

    def mirror_job(self) -> JobFn | None:
        """The MuninnDB sync job when the mirror is enabled, else None."""
        if not self.config.muninn.enabled:
            return None
        from engram.mirror.job import sync_job

        return sync_job(self.store, self.config.muninn)

    # -- capture ----------------------------------------------------------------------

    def capture_policy(self) -> CapturePolicy:
        """What no source may journal (`[capture]`); every capture door passes it to
        `journaling.record()`, which also applies `<private>` and `engram pause`."""
        from engram.journaling import CapturePolicy

        return CapturePolicy.from_patterns(self.config.capture.ignore_projects)

    def watcher(self, warn: Callable[..., None]) -> Watcher:
        """The mitmweb watcher, configured by [mitmproxy]."""
        from engram.sources.mitmweb import MitmwebClient
        from engram.sources.watcher import Watcher, WatchSettings

        m = self.config.mitmproxy
        settings = WatchSettings(
            prune=m.prune,
            body_limit=int(m.body_limit_mb * 2**20),
            hosts=list(m.hosts),
            ignore_hosts=list(m.ignore_hosts),
            capture=self.capture_policy(),
        )
        return Watcher(self.store, MitmwebClient(m.url, m.token), settings, warn=warn)

    def flow_file_watcher(self, path: Path) -> FlowFileWatcher:
        from engram.sources.flowfile import FlowFileWatcher

        return FlowFileWatcher(
            self.store,
            path,
            capture=self.capture_policy(),
            body_limit=int(self.config.mitmproxy.body_limit_mb * 2**20),
        )

    def transcript_follower(
        self,
        *,
        agents: list[str] | None = None,
        paths: list[Path] | None = None,
        since: float | None = None,
        project: str | None = None,
        settle: float | None = None,
        known: dict[Path, str | None] | None = None,
    ) -> TranscriptFollower:
        """The agents' transcripts as a poll source, configured by [transcripts]: their
        default locations for `agents`, and/or the given files and directories."""
        from engram.sources.transcripts import Target, TranscriptFollower

        t = self.config.transcripts
        targets = [Target(agent=a) for a in agents or []]
        if paths:
            targets.append(Target(paths=list(paths)))
        return TranscriptFollower(
            self.store,
            targets,
            self.capture_policy(),
            since=since,
            project=project,
            settle=t.settle if settle is None else settle,
            overrides=t.roots(),
            known=known,
        )

    def proxy(
        self,
        upstream: str,
        *,
        inject: bool,
        project_hint: str | None,
        on_recall_unavailable: Callable[[str], None] | None = None,
    ) -> Proxy:
        """The reverse proxy: journal capture always, recall and injection when `inject`."""
        from engram.sources.capture_spool import spool_dir
        from engram.sources.capture_writer import journal_capture
        from engram.sources.proxy import Proxy, ProxySettings, bound_heap

        bound_heap()  # before the model loads: ~40-80 MB less RSS (sources/proxy.py)
        self.store.ensure()
        p = self.config.proxy
        settings = ProxySettings(
            upstream=upstream,
            recall_budget_ms=p.recall_budget_ms,
            max_body_bytes=int(p.max_body_mb * 2**20),
            inject=inject,
            spool_dir=spool_dir(self.store.path),
        )
        proxy = Proxy(
            settings, capture=journal_capture(self.store, project_hint, self.capture_policy())
        )
        if inject:
            try:
                proxy.recall = self.proxy_recall(project_hint, proxy.writer.defer)
            except ImportError as exc:  # recall unavailable: still a working capture proxy
                if on_recall_unavailable is not None:
                    on_recall_unavailable(f"recall is unavailable ({exc}); capturing only")
        return proxy

    # -- background work --------------------------------------------------------------

    def scheduler(
        self,
        reporter: Reporter,
        *,
        sources: list[PollSource] | None = None,
        analyze: JobFn | None = None,
        sync: JobFn | None = None,
        extra: list[Job] | None = None,
        interval: float | None = None,
    ) -> Scheduler:
        """The one scheduler for every background job of this process: polling capture
        sources, the analyzer when a batch is due, the mirror. `interval` overrides the
        poll interval ([mitmproxy] interval; the transcript follower's own is
        [transcripts] interval)."""
        from engram.sources.scheduler import Scheduler, Timing

        a = self.config.analyzer
        return Scheduler(
            self.store,
            reporter,
            Timing(
                interval=self.config.mitmproxy.interval if interval is None else interval,
                batch=a.batch,
                max_wait=a.max_wait,
                sync_interval=self.config.muninn.interval,
            ),
            sources=sources or [],
            analyze=analyze,
            sync=sync,
            extra=extra or [],
        )
