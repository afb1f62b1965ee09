"""Which analyzer backend runs: a named one, or `auto`'s pick for this machine.

`auto` picks, in order: an Anthropic API key -> anthropic; else Claude Code on PATH ->
claude-code (the user's subscription); else an installed local model -> local; else the
heuristic. `auto_choice` says which without building anything, so `engram doctor` checks
what `auto` would really run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engram.analyzer.backends import Backend
from engram.config import AnalyzerConfig
from engram.errors import EngramError

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


def auto_choice(settings: AnalyzerConfig) -> tuple[str, str]:
    """(the backend `auto` runs here, why), without building it."""
    import importlib.util
    import shutil

    from engram.analyzer import models

    if settings.api_key:
        return "anthropic", "an Anthropic API key is configured"
    claude = shutil.which(settings.claude_command)
    if claude:
        return (
            "claude-code",
            f"no API key, and Claude Code is installed ({claude}); it uses your Claude login",
        )
    model = models.default_model(settings.local_model)
    if model is not None and model.is_file() and importlib.util.find_spec("xllamacpp"):
        return "local", "no API key or Claude Code; a local model is installed"
    hint = (
        "`engram models fetch` installs a local model"
        if importlib.util.find_spec("xllamacpp")
        else "pip install 'engram-tap[local]' and `engram models fetch` add a local model"
    )
    return "heuristic", f"no API key, no Claude Code, no local model ({hint})"


def _auto(settings: AnalyzerConfig, proxy_listen: Sequence[str]) -> tuple[Backend, str]:
    name, reason = auto_choice(settings)
    backend, why = _named(name, settings, proxy_listen)
    return backend, f"auto -> {why}: {reason}"


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
        with_heuristic=settings.local_heuristic,
    )
