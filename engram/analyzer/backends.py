"""Analyzer backends: the model that reads a batch and answers in engram's grammar.

Each backend takes a `Batch` (the rendered prompt and the structured conversations)
and returns an `Answer` (text, usage, model). The SDK backends never go through a proxy
(their HTTP client has `trust_env=False`) and mark their requests
`X-Engram-Internal: 1`, so engram never captures its own analyzer calls. Retries of
429/5xx/timeouts with exponential backoff honouring `retry-after` are the SDKs' own
(`max_retries`); what still fails is raised as `AnalyzerError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engram.errors import EngramError
from engram.wire.markers import INTERNAL_HEADERS
from engram.wire.model import Usage


class AnalyzerError(EngramError):
    """A failed analyzer call. `auth` errors are configuration, not the batch's fault."""

    def __init__(self, message: str, *, auth: bool = False, retryable: bool = True) -> None:
        super().__init__(message)
        self.auth = auth
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    # What the call cost as the backend itself reports it (the Claude Code CLI does);
    # None: estimated from `analyzer.prices`.
    cost_usd: float | None = None
    # Lines the backend set aside itself before validation, with why (the local backend:
    # a model line that repeats one of the heuristic's facts). `analyze --dry-run` lists
    # them beside validation's decisions, so every line the model wrote is accounted for.
    dropped: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Batch:
    system: str
    user: str
    conversations: Sequence[Mapping[str, Any]]  # {"project", "conversation", "turns"}
    candidate_ids: Sequence[str] = ()  # the only ids a supersede/forget may name


class Backend(Protocol):
    name: str
    model: str

    def analyze(self, batch: Batch) -> Answer: ...


def _http_client(timeout: float) -> Any:
    import httpx2

    return httpx2.Client(trust_env=False, timeout=timeout)


class AnthropicBackend:
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None,
        timeout: float,
        retries: int,
        max_output_tokens: int,
    ) -> None:
        import anthropic

        self.model = model
        self.max_output_tokens = max_output_tokens
        self._errors = anthropic
        self.client = anthropic.Anthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=retries,
            default_headers=dict(INTERNAL_HEADERS),
            http_client=_http_client(timeout),
        )

    def analyze(self, batch: Batch) -> Answer:
        sdk = self._errors
        try:
            message = self.client.messages.create(
                model=self.model,
                max_tokens=self.max_output_tokens,
                # The system prompt is byte-identical on every call, so it is marked for
                # caching; Anthropic caches only prefixes above a model's minimum length
                # (4,096 tokens on Haiku 4.5), so this pays off with longer prompts.
                system=[
                    {"type": "text", "text": batch.system, "cache_control": {"type": "ephemeral"}}
                ],
                messages=[{"role": "user", "content": batch.user}],
            )
        except sdk.AuthenticationError as exc:
            raise AnalyzerError(
                "the Anthropic API rejected the analyzer's key (401); set "
                "ANTHROPIC_API_KEY or analyzer.api_key",
                auth=True,
                retryable=False,
            ) from exc
        except sdk.PermissionDeniedError as exc:
            raise AnalyzerError(
                f"the Anthropic API refused the request (403): {exc.message}",
                auth=True,
                retryable=False,
            ) from exc
        except sdk.APIStatusError as exc:
            raise AnalyzerError(
                f"Anthropic API error {exc.status_code}: {exc.message}",
                retryable=exc.status_code >= 429,
            ) from exc
        except sdk.APIConnectionError as exc:
            raise AnalyzerError(f"Anthropic API unreachable or timed out: {exc}") from exc
        except Exception as exc:  # an empty or malformed body fails inside the SDK's parser
            raise AnalyzerError(f"malformed response from the Anthropic API: {exc!r}") from exc
        text = "".join(
            getattr(b, "text", "") for b in message.content if getattr(b, "type", "") == "text"
        )
        u = message.usage
        usage = Usage(
            input_tokens=u.input_tokens or 0,
            output_tokens=u.output_tokens or 0,
            cache_read_tokens=getattr(u, "cache_read_input_tokens", 0) or 0,
            cache_creation_tokens=getattr(u, "cache_creation_input_tokens", 0) or 0,
        )
        return Answer(text=text, model=message.model or self.model, usage=usage)


class OpenAIBackend:
    """Any OpenAI-compatible chat endpoint: OpenAI, Ollama, vLLM, LM Studio."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None,
        model: str,
        base_url: str | None,
        timeout: float,
        retries: int,
        max_output_tokens: int,
    ) -> None:
        import openai

        self.model = model
        self.max_output_tokens = max_output_tokens
        self._errors = openai
        self.client = openai.OpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url,
            timeout=timeout,
            max_retries=retries,
            default_headers=dict(INTERNAL_HEADERS),
            http_client=_http_client(timeout),
        )

    def analyze(self, batch: Batch) -> Answer:
        sdk = self._errors
        try:
            completion = self.client.chat.completions.create(
                model=self.model,
                max_tokens=self.max_output_tokens,
                messages=[
                    {"role": "system", "content": batch.system},
                    {"role": "user", "content": batch.user},
                ],
            )
        except sdk.AuthenticationError as exc:
            raise AnalyzerError(
                "the OpenAI-compatible endpoint rejected the analyzer's key "
                "(401); set analyzer.openai_api_key",
                auth=True,
                retryable=False,
            ) from exc
        except sdk.APIStatusError as exc:
            raise AnalyzerError(
                f"OpenAI-compatible API error {exc.status_code}: {exc.message}",
                retryable=exc.status_code >= 429,
            ) from exc
        except sdk.APIConnectionError as exc:
            raise AnalyzerError(f"OpenAI-compatible API unreachable or timed out: {exc}") from exc
        except Exception as exc:  # an empty or malformed body fails inside the SDK's parser
            raise AnalyzerError(
                f"malformed response from the OpenAI-compatible API: {exc!r}"
            ) from exc
        choice = completion.choices[0] if completion.choices else None
        text = (choice.message.content or "") if choice else ""
        u = completion.usage
        details = getattr(u, "prompt_tokens_details", None) if u else None
        cached = (getattr(details, "cached_tokens", 0) or 0) if details else 0
        usage = Usage(
            input_tokens=max(0, (u.prompt_tokens or 0) - cached) if u else 0,
            output_tokens=(u.completion_tokens or 0) if u else 0,
            cache_read_tokens=cached,
        )
        return Answer(text=text, model=completion.model or self.model, usage=usage)


class HeuristicBackend:
    """Offline and free: conservative rules, no model (engram.analyzer.heuristic)."""

    name = "heuristic"
    model = "heuristic"

    def analyze(self, batch: Batch) -> Answer:
        from engram.analyzer import heuristic

        lines = heuristic.analyze(batch.conversations)
        # "NONE" keeps "nothing worth keeping" apart from an empty (failed) answer.
        return Answer(text="\n".join(lines) or "NONE", model=self.model)


def cost(usage: Usage, model: str, prices: Mapping[str, Sequence[float]]) -> float:
    """Estimated USD from the per-model price table (per million tokens); unknown: 0."""
    table = prices.get(model)
    if table is None:  # dated model names ("claude-haiku-4-5-20251001") price as their base
        table = next((p for name, p in prices.items() if model.startswith(name)), None)
    if not table:
        return 0.0
    inp, out, cread, cwrite = [*table, 0.0, 0.0, 0.0, 0.0][:4]
    return (
        usage.input_tokens * inp
        + usage.output_tokens * out
        + usage.cache_read_tokens * cread
        + usage.cache_creation_tokens * cwrite
    ) / 1e6
