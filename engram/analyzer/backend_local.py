"""The `local` analyzer backend: a GGUF model in-process through llama.cpp (`xllamacpp`).

Nothing leaves the machine and nothing runs as a server: `xllamacpp.Server` is
llama.cpp's server code called as a library (no socket). The model is loaded once, on
the first batch, and kept for the life of the process (the watcher's, the proxy's).

Sampling is greedy (temperature 0) and constrained by a GBNF grammar built per batch:
the model can only write `engram add --kind K --scope S "text"` lines, `supersede` and
`forget` with the ids actually offered as candidates (none when none were), `--scope
global` only when the conversation's project is unknown, at most ten lines, or NONE.
Small models otherwise ramble, invent ids and wrap commands in prose; with the grammar
every line parses, and what they write is then validated harder than a large model's
(`engram.analyzer.validate`).

Measured on 2 cores (bench/analyzer_quality.py): Qwen2.5-Coder-1.5B Q4_K_M loads in
2-5 s (~1.5 GB RSS) and generates ~30 tokens/s; the 0.5B ~50 tokens/s. Prompt
processing dominates a batch, so the input budget is capped by the context size.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engram.analyzer import heuristic, prompt
from engram.analyzer.backends import AnalyzerError, Answer, Batch
from engram.analyzer.grammar import parse_commands
from engram.analyzer.validate import concrete_tokens, content_words
from engram.store.schema import ID_ALPHABET, ID_LENGTH, ID_PREFIX, KINDS
from engram.wire.model import Usage

MAX_LINES = 10
_ID = re.compile(rf"{re.escape(ID_PREFIX)}[{ID_ALPHABET}]{{{ID_LENGTH}}}")
_TEXT = r'[^"\\\n]{8,300}'


def grammar(candidate_ids: Sequence[str], project_known: bool) -> str:
    """The GBNF grammar of one answer (see the module docstring)."""
    kinds = " | ".join(f'"{k}"' for k in KINDS)
    scopes = '"global" | "project"' if project_known else '"global"'
    rules = [
        f'root ::= "NONE" | line ("\\n" line){{0,{MAX_LINES - 1}}}',
        f"kind ::= {kinds}",
        f"scope ::= {scopes}",
        f"text ::= {_TEXT}",
        'add ::= "engram add --kind " kind " --scope " scope " \\"" text "\\""',
    ]
    alternatives = ["add"]
    ids = [i for i in candidate_ids if _ID.fullmatch(i)]
    if ids:
        rules.append("id ::= " + " | ".join(f'"{i}"' for i in ids))
        rules.append('supersede ::= "engram supersede " id " --kind " kind " \\"" text "\\""')
        rules.append('forget ::= "engram forget " id')
        alternatives += ["supersede", "forget"]
    rules.insert(1, "line ::= " + " | ".join(alternatives))
    return "\n".join(rules) + "\n"


def default_threads() -> int:
    """Half the logical cores (the physical ones on a hyperthreaded CPU), at least one.

    llama.cpp's threads meet at a barrier for every layer of every token, so they only
    help while each has a core to itself: on a busy 2-core machine (the agent, the
    proxy and the user's build share it) two threads generated ~3.3 s/token where one
    generated ~1 s/token (Qwen2.5-Coder-0.5B, measured at load average 15).
    """
    return max(1, (os.cpu_count() or 2) // 2)


class LocalBackend:
    name = "local"
    strict = True  # small models write junk: validation is harder (engram.analyzer.validate)
    prompt_version = prompt.LOCAL_PROMPT_VERSION

    def __init__(
        self,
        *,
        model_path: Path,
        threads: int = 0,
        context: int = 8192,
        max_output_tokens: int = 512,
        with_heuristic: bool = True,
    ) -> None:
        self.path = Path(model_path)
        self.model = self.path.stem
        self.threads = threads or default_threads()
        self.context = context
        self.max_output_tokens = max_output_tokens
        self.with_heuristic = with_heuristic
        # The runner packs a batch's turns under this; the system prompt (~800 tokens),
        # up to 20 candidate memories (~600) and the answer must fit beside them.
        self.max_input_tokens = max(1000, context - max_output_tokens - 2000)
        self._server: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model (idempotent, thread-safe); raises AnalyzerError(auth=True) for
        what no retry can fix: a missing runtime or file."""
        if self._server is not None:
            return
        with self._lock:
            if self._server is not None:
                return
            try:
                import xllamacpp
            except ImportError:
                raise AnalyzerError(
                    "the local analyzer needs xllamacpp: pip install 'engram-tap[local]'",
                    auth=True,
                    retryable=False,
                ) from None
            if not self.path.is_file():
                raise AnalyzerError(
                    f"no model file at {self.path}: run `engram models fetch` or set "
                    "analyzer.local_model",
                    auth=True,
                    retryable=False,
                )
            params = xllamacpp.CommonParams()
            params.model.path = str(self.path)
            params.n_ctx = self.context
            params.n_parallel = 1
            params.cpuparams.n_threads = self.threads
            params.cpuparams_batch.n_threads = self.threads
            # Threads sleep instead of spinning while they wait: engram runs beside the
            # agent and must not burn its CPU.
            params.cpuparams.poll = 0
            params.cpuparams_batch.poll = 0
            params.warmup = False
            params.verbosity = -1  # llama.cpp logs nothing to our stderr
            try:
                self._server = xllamacpp.Server(params)
            except Exception as exc:
                raise AnalyzerError(
                    f"could not load {self.path.name}: {exc}", auth=True, retryable=False
                ) from exc

    def analyze(self, batch: Batch) -> Answer:
        self.load()
        project_known = any(c.get("project") for c in batch.conversations)
        chat = messages(batch)
        result = self._complete(
            {
                "messages": chat,
                "temperature": 0.0,
                "max_tokens": self.max_output_tokens,
                "grammar": grammar(batch.candidate_ids, project_known),
                "cache_prompt": True,  # the prompt and examples' KV is reused from the last batch
            }
        )
        text = _content(result)
        usage = _usage(result)
        dropped: tuple[tuple[str, str], ...] = ()
        if self.with_heuristic:
            text, dropped = merge(heuristic.analyze(batch.conversations), text)
        return Answer(text=text, model=self.model, usage=usage, cost_usd=0.0, dropped=dropped)

    def _complete(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            try:
                result = self._server.handle_chat_completions(request)
            except Exception as exc:
                raise AnalyzerError(f"the local model failed: {exc}") from exc
        if not isinstance(result, dict) or "choices" not in result:
            message = result.get("error") if isinstance(result, dict) else result
            raise AnalyzerError(f"the local model failed: {str(message)[:300]}")
        return result


def _content(result: dict[str, Any]) -> str:
    choices = result.get("choices") or [{}]
    return str(((choices[0] or {}).get("message") or {}).get("content") or "")


def _usage(result: dict[str, Any]) -> Usage:
    u = result.get("usage") or {}
    cached = int(((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    return Usage(
        input_tokens=max(0, int(u.get("prompt_tokens") or 0) - cached),
        output_tokens=int(u.get("completion_tokens") or 0),
        cache_read_tokens=cached,
    )


def messages(batch: Batch) -> list[dict[str, str]]:
    """The chat: the local system prompt, the worked examples as earlier turns, the batch.

    Everything before the batch is the same on every call, so llama.cpp reuses its KV
    cache (`cache_prompt`) and only the batch itself is processed.
    """
    out = [{"role": "system", "content": prompt.LOCAL_SYSTEM_PROMPT}]
    for conversation, answer in prompt.LOCAL_EXAMPLES:
        out.append({"role": "user", "content": conversation})
        out.append({"role": "assistant", "content": answer})
    conversations = [
        prompt.ConversationInput(c.get("project"), str(c.get("conversation") or ""), c["turns"])
        for c in batch.conversations
    ]
    candidates = prompt.listed_candidates(batch.user)
    out.append({"role": "user", "content": prompt.build_local_message(conversations, candidates)})
    return out


def merge(
    heuristic_lines: Sequence[str], model_text: str
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The heuristic's lines first (read from the user's words only, its precision is
    the higher), then the model's that say something the heuristic's do not; "NONE"
    only when both have nothing. A model line most of whose words one heuristic line
    holds ("Use yarn in this project, not npm" beside the user's "Always use yarn in
    this project, npm is making problem with the lock file") is the same fact, and the
    embedder's folding does not catch such a pair (the user's sentence has words of its
    own). Validation folds what is left against stored memories. Also returns the model
    lines dropped that way, each with the heuristic line that holds it."""
    covered = [(line, _words(line)) for line in heuristic_lines]
    lines = list(heuristic_lines)
    dropped: list[tuple[str, str]] = []
    for line in model_text.splitlines():
        if not line.strip() or line.strip() == "NONE":
            continue
        mine = _words(line)
        holder = next(
            (h for h, theirs in covered if mine and len(mine & theirs) >= 0.75 * len(mine)),
            None,
        )
        if holder is not None:
            dropped.append((line.strip(), f"repeats the heuristic's fact: {holder}"))
            continue
        lines.append(line)
    return ("\n".join(lines) if lines else "NONE"), tuple(dropped)


def _words(line: str) -> set[str]:
    parsed = parse_commands(line).commands
    text = parsed[0].text if parsed and parsed[0].text else ""
    return content_words(text) | concrete_tokens(text)
