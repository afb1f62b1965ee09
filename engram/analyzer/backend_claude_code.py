"""The `claude-code` analyzer backend: the user's own Claude Code CLI, non-interactively.

For people who use Claude Code through a Pro/Max subscription and have no API key, the
CLI is the only way to a Claude model (the original Rust engram ran `claude --model
haiku` for exactly this). Each batch is one `claude -p` run:

- the prompt on stdin, engram's system prompt in place of Claude Code's, `--model`
  from `analyzer.claude_model` (default `haiku`), `--output-format json`;
- no tools (`--tools ""`), one turn (`--max-turns 1`), nothing that could run code on
  its own: `--safe-mode` (no hooks, MCP servers, CLAUDE.md, plugins, custom commands;
  auth and model selection work as usual, unlike `--bare`, which would refuse a
  subscription login), `--strict-mcp-config`, `--disable-slash-commands`,
  `--permission-mode dontAsk`, and `--no-session-persistence` (no transcript at all);
  flags an older CLI does not list in its `--help` are left out rather than failing;
- working directory `engram.paths.analyzer_workdir()`, a project every source skips;
- the CLI's own retries (429, 5xx, and by default even a 401, ten times over minutes)
  limited to `analyzer.retries` (`CLAUDE_CODE_MAX_RETRIES`), and a timeout
  (`analyzer.timeout`) that kills the CLI's whole process group;
- its traffic is marked `X-Engram-Internal: 1` (`ANTHROPIC_CUSTOM_HEADERS`, which
  Claude Code sends on every request), and it never goes through engram: an
  `ANTHROPIC_BASE_URL` that points at an engram proxy is replaced by the real upstream
  (`ENGRAM_UPSTREAM`) or dropped, and proxy variables pointing at a loopback
  interceptor (engram's or mitmweb's) are dropped.

Measured with Claude Code 2.1.332 against the loopback stand-in: ~1 s of CLI start-up
per call on top of the model's time; with engram's system prompt instead of Claude
Code's the request is ~470 input tokens plus the batch (Claude Code's own prompt would
add ~2,000 more). Cost and tokens come from the CLI's JSON result (`total_cost_usd`,
`usage`); for subscription users that cost is Claude Code's list-price estimate.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engram.analyzer.backends import AnalyzerError, Answer, Batch
from engram.wire.markers import INTERNAL_HEADER, INTERNAL_VALUE
from engram.wire.model import Usage

PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
# Set inside a Claude Code session; a child that sees them may think it is nested.
_NESTED_VARS = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SSE_PORT")
# Safety flags passed only when the installed CLI lists them (older 2.x may not).
_OPTIONAL_FLAGS: tuple[tuple[str, ...], ...] = (
    ("--safe-mode",),
    ("--strict-mcp-config",),
    ("--disable-slash-commands",),
    ("--no-session-persistence",),
    ("--permission-mode", "dontAsk"),
)
_LOGIN_HINT = "run `claude /login` (or set ANTHROPIC_API_KEY for Claude Code)"
_AUTH_WORDS = ("not logged in", "please log in", "/login", "invalid api key", "oauth token")


def _loopback(host: str | None) -> bool:
    return (host or "").lower() in ("127.0.0.1", "localhost", "::1", "0.0.0.0") or (
        host or ""
    ).startswith("127.")


def child_env(environ: Mapping[str, str], engram_listen: Sequence[str] = ()) -> dict[str, str]:
    """The CLI's environment: the user's, marked internal and kept away from engram.

    `engram_listen` holds the HOST:PORT addresses engram's proxy listens on; a base URL
    pointing there, or any loopback base URL while `ENGRAM_UPSTREAM` says we are inside
    `engram run`, is engram's own and is replaced by the real upstream.
    """
    env = {k: v for k, v in environ.items() if k not in _NESTED_VARS}
    for name in PROXY_VARS:
        value = env.get(name)
        if value and _loopback(urlsplit(value if "://" in value else f"http://{value}").hostname):
            del env[name]
    base = env.get("ANTHROPIC_BASE_URL")
    if base:
        parts = urlsplit(base)
        netloc = (parts.netloc or "").lower()
        listen = {a.lower().replace("localhost", "127.0.0.1") for a in engram_listen}
        ours = netloc.replace("localhost", "127.0.0.1") in listen or (
            bool(env.get("ENGRAM_UPSTREAM")) and _loopback(parts.hostname)
        )
        if ours:
            upstream = env.get("ENGRAM_UPSTREAM")
            if upstream and not _loopback(urlsplit(upstream).hostname):
                env["ANTHROPIC_BASE_URL"] = upstream
            else:
                del env["ANTHROPIC_BASE_URL"]
    marker = f"{INTERNAL_HEADER}: {INTERNAL_VALUE}"
    custom = [
        line
        for line in env.get("ANTHROPIC_CUSTOM_HEADERS", "").splitlines()
        if line.strip() and not line.lower().startswith(INTERNAL_HEADER.lower() + ":")
    ]
    env["ANTHROPIC_CUSTOM_HEADERS"] = "\n".join([*custom, marker])
    env.setdefault("DISABLE_AUTOUPDATER", "1")
    env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    return env


class ClaudeCodeBackend:
    """`claude -p` per batch; see the module docstring."""

    name = "claude-code"

    def __init__(
        self,
        *,
        model: str,
        command: str,
        workdir: Path,
        timeout: float,
        retries: int = 3,
        engram_listen: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.model = model
        self.retries = retries
        self.command = command
        self.workdir = workdir
        self.timeout = timeout
        self.engram_listen = tuple(engram_listen)
        self._environ = environ
        self._flags: list[str] | None = None

    def binary(self) -> str:
        found = shutil.which(self.command)
        if found is None:
            raise AnalyzerError(
                f"the claude-code analyzer needs the Claude Code CLI, and {self.command!r} "
                "is not on PATH (npm install -g @anthropic-ai/claude-code, or set "
                "analyzer.claude_command)",
                auth=True,
                retryable=False,
            )
        return found

    def _optional_flags(self, binary: str, env: Mapping[str, str]) -> list[str]:
        """The safety flags this CLI version knows (read once from its --help)."""
        if self._flags is None:
            try:
                help_text = subprocess.run(
                    [binary, "--help"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    env=dict(env),
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                ).stdout
            except (OSError, subprocess.TimeoutExpired):
                help_text = ""
            self._flags = [w for flag in _OPTIONAL_FLAGS if flag[0] in help_text for w in flag]
        return self._flags

    def argv(self, batch: Batch, binary: str, env: Mapping[str, str]) -> list[str]:
        return [
            binary,
            "-p",
            "--output-format",
            "json",
            "--model",
            self.model,
            "--system-prompt",
            batch.system,
            "--tools",
            "",
            "--max-turns",
            "1",
            *self._optional_flags(binary, env),
        ]

    def analyze(self, batch: Batch) -> Answer:
        from engram.paths import make_private_dir

        binary = self.binary()
        make_private_dir(self.workdir)
        env = child_env(os.environ if self._environ is None else self._environ, self.engram_listen)
        # The CLI retries failed calls itself (a 401 too, ten times with backoff, by
        # default): as many as the API backends' SDKs do, `analyzer.retries`.
        env["CLAUDE_CODE_MAX_RETRIES"] = str(self.retries)
        argv = self.argv(batch, binary, env)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=self.workdir,
                start_new_session=True,  # a timeout kills the CLI and whatever it started
            )
        except OSError as exc:
            raise AnalyzerError(f"could not start {binary}: {exc}", retryable=False) from exc
        try:
            out, err = proc.communicate(batch.user, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise AnalyzerError(
                f"claude -p did not answer within {self.timeout:g}s (analyzer.timeout)"
            ) from None
        return self._answer(proc.returncode, out, err)

    def _answer(self, code: int, out: str, err: str) -> Answer:
        result = _last_json(out)
        if result is None:
            detail = (err or out).strip().splitlines()[-1:] or [f"exit code {code}"]
            if any(w in (err + out).lower() for w in _AUTH_WORDS):
                raise AnalyzerError(
                    f"Claude Code is not logged in ({detail[0][:200]}): {_LOGIN_HINT}",
                    auth=True,
                    retryable=False,
                )
            raise AnalyzerError(f"claude -p failed (exit {code}): {detail[0][:300]}")
        text = str(result.get("result") or "")
        status = result.get("api_error_status")
        if result.get("is_error") or code != 0:
            lowered = text.lower()
            if status in (401, 403) or any(w in lowered for w in _AUTH_WORDS):
                raise AnalyzerError(
                    f"Claude Code could not authenticate ({text[:200]}): {_LOGIN_HINT}",
                    auth=True,
                    retryable=False,
                )
            if status == 429 or "rate limit" in lowered or "usage limit" in lowered:
                raise AnalyzerError(f"Claude Code is rate limited: {text[:200]}")
            raise AnalyzerError(f"claude -p failed (exit {code}): {text[:300] or 'no result'}")
        return Answer(
            text=text,
            model=_model_of(result) or self.model,
            usage=_usage_of(result),
            cost_usd=_float(result.get("total_cost_usd")),
        )


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.communicate()


def _last_json(out: str) -> dict[str, Any] | None:
    """The CLI's result object (the last JSON line of stdout; older versions may print
    warnings before it)."""
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and value.get("type") == "result":
                return value
    return None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def _usage_of(result: Mapping[str, Any]) -> Usage:
    u = result.get("usage")
    if not isinstance(u, Mapping):
        return Usage()
    return Usage(
        input_tokens=_int(u.get("input_tokens")),
        output_tokens=_int(u.get("output_tokens")),
        cache_read_tokens=_int(u.get("cache_read_input_tokens")),
        cache_creation_tokens=_int(u.get("cache_creation_input_tokens")),
    )


def _model_of(result: Mapping[str, Any]) -> str | None:
    models = result.get("modelUsage")
    if isinstance(models, Mapping) and models:
        return str(next(iter(models)))
    return None
