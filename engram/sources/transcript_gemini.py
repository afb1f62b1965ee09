"""Gemini CLI chats and Qwen Code sessions: two forks that write Gemini `Content` parts.

Gemini CLI 0.61.0, verified (`gemini -p`, `--resume latest`, a tool call):
`~/.gemini/tmp/<project id>/chats/session-<time>-<id prefix>.jsonl` (`GEMINI_CLI_HOME`
moves `~/.gemini`), the project's directory in `tmp/<project id>/.project_root` (and
`~/.gemini/projects.json`). The file is a log of a JSON document: a header line
(`sessionId`, `projectHash`, `startTime`, `kind`), message records (`id`, `type`: user |
gemini | info | error | warning, `content` as parts or a string, `toolCalls`, `model`,
`tokens`), and `{"$set": {...}}` patches. A message is written again under the same id
when it changes (a `gemini` message gains its `toolCalls`); `$set.messages` replaces
the whole list when a session is resumed. Tool results follow as a `user` record with
`functionResponse` parts.

Qwen Code 0.24.4, verified (`qwen -p`, `--continue`, a tool call):
`~/.qwen/projects/<cwd, / -> ->/chats/<session id>.jsonl` (`QWEN_HOME` moves
`~/.qwen`); Claude Code-like records (`type`: user | assistant | tool_result | system,
`sessionId`, `cwd`, `uuid`) whose `message` is a Gemini `Content` (`role`, `parts`).

Neither sends a session id to the API in API-key mode, so the proxy keys their
conversations by a hash of how they began, not by this id: the same session seen
through both doors is two conversations (see docs/transcripts.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engram.sources.transcript_formats import (
    Draft,
    ParserBase,
    Span,
    clean_turn,
    line_key,
    timestamp,
)
from engram.wire.common import as_dict, as_list, as_str, canonical_arguments
from engram.wire.gemini import parts_builder, usage_of
from engram.wire.model import Format, ToolCall, Turn, Usage
from engram.wire.text import is_preamble, project_from_system


class _Pieces:
    """Turns collected until a model message completes a piece."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.turns: list[Turn] = []
        self.span = Span()
        self.end = 0
        self.usage = Usage()
        self.model: str | None = None

    def take(self, conversation: str, project: str | None) -> list[Draft]:
        if not self.turns:
            return []
        span = self.span
        draft = Draft(
            conversation=conversation,
            turns=self.turns,
            end=self.end,
            key=line_key(self.agent, conversation, span.last),
            project=project,
            model=self.model,
            usage=self.usage,
            started_at=span.started_at,
            ended_at=span.ended_at,
            bytes=span.bytes,
        )
        self.turns, self.span, self.usage = [], Span(), Usage()
        return [draft]


def _parts_turn(role: str, parts: Any) -> Turn:
    if isinstance(parts, str):
        return Turn(role=role, text=parts)
    return clean_turn(parts_builder(parts).build(role, sep=""))


class GeminiParser(ParserBase):
    format = Format.GEMINI
    provider = "google"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.conversation = path.stem
        self.project = _project_root(path)
        self._pieces = _Pieces("gemini")
        self._model: tuple[str, Turn, bytes, float | None] | None = None  # open reply
        self._ids: set[str] = set()
        self._end = 0

    @property
    def open(self) -> bool:
        return not self._skipped and (self._model is not None or bool(self._pieces.turns))

    def feed(self, record: Any, line: bytes, end: int) -> list[Draft]:
        if not isinstance(record, dict):
            return []
        self._end = end
        if "sessionId" in record and "type" not in record:
            self.conversation = str(record["sessionId"])
            return []
        patch = record.get("$set")
        if isinstance(patch, dict):
            if isinstance(patch.get("sessionId"), str):
                self.conversation = patch["sessionId"]
            done: list[Draft] = []
            for message in as_list(patch.get("messages")):
                message = as_dict(message)
                if str(message.get("id")) not in self._ids:  # a resumed session's history
                    done += self._message(message, json.dumps(message).encode(), end)
            return done
        return self._message(record, line, end)

    def _message(self, record: dict[str, Any], line: bytes, end: int) -> list[Draft]:
        kind = record.get("type")
        message_id = str(record.get("id") or "")
        if kind == "gemini" and self._model is not None and self._model[0] == message_id:
            self._model = (
                message_id,
                _model_turn(record),
                line,
                timestamp(record.get("timestamp")),
            )
            self._pieces.end = end
            return []  # the same message written again, with more in it
        done = self._close()
        if kind not in ("user", "gemini") or self._skipped:
            return done
        self._ids.add(message_id)
        at = timestamp(record.get("timestamp"))
        if kind == "gemini":
            self._model = (message_id, _model_turn(record), line, at)
            self._pieces.model = as_str(record.get("model")) or self._pieces.model
            tokens = as_dict(record.get("tokens"))
            self._pieces.usage = Usage(
                input_tokens=max(int(tokens.get("input") or 0) - int(tokens.get("cached") or 0), 0),
                output_tokens=int(tokens.get("output") or 0) + int(tokens.get("thoughts") or 0),
                cache_read_tokens=int(tokens.get("cached") or 0),
            )
        else:
            turn = _parts_turn("user", record.get("content"))
            if is_preamble(turn.text):
                self.project = self.project or project_from_system(turn.text)
            else:
                self._pieces.turns.append(turn)
            self._pieces.span.add(line, at)
        self._pieces.end = end
        self.note_project(self.project)
        return done

    def flush(self) -> list[Draft]:
        done = self._close()
        if self._skipped:
            return done
        return done + self._pieces.take(self.conversation, self.project)

    def _close(self) -> list[Draft]:
        if self._model is None:
            return []
        _id, turn, line, at = self._model
        self._model = None
        self._pieces.turns.append(turn)
        self._pieces.span.add(line, at)
        if self._skipped:
            self._pieces.turns = []
            return []
        return self._pieces.take(self.conversation, self.project)


def _model_turn(record: dict[str, Any]) -> Turn:
    turn = _parts_turn("assistant", record.get("content"))
    calls = tuple(
        ToolCall(
            id=as_str(call.get("id")) or as_str(call.get("name")),
            name=as_str(call.get("name")),
            arguments=canonical_arguments(call.get("args")),
        )
        for call in (as_dict(c) for c in as_list(record.get("toolCalls")))
    )
    thoughts = [as_str(as_dict(t).get("description")) for t in as_list(record.get("thoughts"))]
    return Turn("assistant", turn.text, turn.tool_calls + calls, (), "\n".join(thoughts))


def _project_root(path: Path) -> str | None:
    """`tmp/<project id>/.project_root` next to the chats directory holds the project."""
    try:
        text = (path.parent.parent / ".project_root").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def sniff_gemini(record: dict[str, Any]) -> bool:
    if "$set" in record:
        return True
    return "sessionId" in record and "projectHash" in record


class QwenParser(ParserBase):
    format = Format.GEMINI
    provider = "alibaba"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.conversation = path.stem
        self.project: str | None = None
        self._pieces = _Pieces("qwen")
        self._answered = False

    @property
    def open(self) -> bool:
        return not self._skipped and bool(self._pieces.turns)

    def feed(self, record: Any, line: bytes, end: int) -> list[Draft]:
        if not isinstance(record, dict):
            return []
        kind = record.get("type")
        message = record.get("message")
        if kind not in ("user", "assistant", "tool_result") or not isinstance(message, dict):
            return self._close()
        cwd = record.get("cwd")
        if isinstance(cwd, str) and cwd:
            self.project = cwd
            self.note_project(cwd)
        self.conversation = str(record.get("sessionId") or self.conversation)
        done = [] if kind == "assistant" and not self._answered else self._close()
        role = "assistant" if kind == "assistant" else "user"
        if kind == "assistant":
            self._pieces.model = as_str(record.get("model")) or self._pieces.model
            self._pieces.usage = usage_of(record.get("usageMetadata"))
            self._answered = True
        self._pieces.turns.append(_parts_turn(role, message.get("parts")))
        self._pieces.span.add(line, timestamp(record.get("timestamp")))
        self._pieces.end = end
        return done

    def flush(self) -> list[Draft]:
        self._answered = True
        return self._close()

    def _close(self) -> list[Draft]:
        if not self._answered:
            return []
        self._answered = False
        if self._skipped:
            self._pieces.turns = []
            return []
        return self._pieces.take(self.conversation, self.project)


def sniff_qwen(record: dict[str, Any]) -> bool:
    message = record.get("message")
    return (
        "sessionId" in record
        and record.get("type") in ("user", "assistant", "tool_result", "system")
        and (not isinstance(message, dict) or "parts" in message)
        and ("provenance" in record or isinstance(message, dict))
    )
