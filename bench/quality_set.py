"""The analyzer quality set (bench/data/analyzer_quality): parsing and scoring.

See bench/data/analyzer_quality/README.md for the format. A conversation becomes one
captured request/response pair in the real wire format of its agent (Anthropic Messages
for Claude Code-shaped ones, OpenAI chat for the others), so the benchmark runs the
whole pipeline: journal (with redaction), analyzer backend, validation, store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "analyzer_quality"
SPLIT = DATA / "split.json"


@dataclass
class Conversation:
    id: str
    author: str
    project: str | None
    shape: str  # "cc" (Anthropic Messages) | "chat" (OpenAI chat)
    turns: list[dict[str, Any]] = field(default_factory=list)
    memories: list[str] = field(default_factory=list)
    expect: list[list[list[str]]] = field(default_factory=list)  # fact -> keywords -> alternatives
    forbid: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


def norm(text: str) -> str:
    return " ".join(text.casefold().split())


def load(authors: Iterable[str] | None = None) -> list[Conversation]:
    wanted = set(authors) if authors is not None else None
    out: list[Conversation] = []
    for path in sorted(DATA.glob("*.txt")):
        if wanted is None or path.stem in wanted:
            out.extend(parse(path.read_text(encoding="utf-8"), path.stem))
    return out


def parse(text: str, author: str) -> list[Conversation]:
    convs: list[Conversation] = []
    conv: Conversation | None = None
    calls = 0
    for raw in text.splitlines():
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        if line.startswith("## "):
            words = line[3:].split()
            opts = dict(w.split("=", 1) for w in words[1:])
            project = opts.get("project", "-")
            conv = Conversation(
                words[0], author, None if project == "-" else project, opts.get("shape", "cc")
            )
            convs.append(conv)
            continue
        if conv is None:
            raise ValueError(f"{author}: text before the first '## ' header: {line!r}")
        tag, _, rest = line.partition(" ")
        turns = conv.turns
        if tag == "U:":
            turns.append({"role": "user", "text": rest})
        elif tag == "A:":
            turns.append({"role": "assistant", "text": rest})
        elif tag == "|":
            turns[-1]["text"] += "\n" + rest
        elif tag == "$":
            calls += 1
            call = {
                "id": f"call_{conv.id}_{calls}",
                "name": "Bash" if conv.shape == "cc" else "shell",
                "arguments": json.dumps({"command": rest}),
            }
            if turns and turns[-1]["role"] == "assistant" and not turns[-1].get("result"):
                turns[-1].setdefault("tool_calls", []).append(call)
            else:
                turns.append({"role": "assistant", "text": "", "tool_calls": [call]})
            turns[-1]["result"] = {"call_id": call["id"], "content": "", "is_error": False}
            turns[-1]["result_open"] = True
        elif tag in (">", "~", "!"):
            result = turns[-1].get("result")
            if result is None:
                raise ValueError(f"{conv.id}: output without a command: {line!r}")
            if tag == ">":
                result["content"] += rest + "\n"
            elif tag == "~":
                count, _, pattern = rest.partition(" ")
                result["content"] += "".join(
                    pattern.replace("{i}", str(i)) + "\n" for i in range(1, int(count) + 1)
                )
            else:
                result["content"] = f"Exit code {rest}\n" + result["content"]
                result["is_error"] = True
        elif tag == "M:":
            conv.memories.append(rest)
        elif tag == "E:":
            conv.expect.append([[a.strip() for a in k.split("|")] for k in rest.split(" ; ")])
        elif tag == "N:":
            conv.forbid.append(rest)
        elif tag == "S:":
            conv.secrets.append(rest)
        else:
            raise ValueError(f"{conv.id}: unknown line {line!r}")
    for c in convs:
        c.turns = _settle(c.turns)
    return convs


def _settle(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool results become their own turns (a user turn for Anthropic, `tool` for chat
    is decided when rendering); the conversation ends with the assistant."""
    out: list[dict[str, Any]] = []
    for t in turns:
        result = t.pop("result", None)
        t.pop("result_open", None)
        out.append(t)
        if result is not None:
            out.append({"role": "tool", "text": "", "tool_results": [result]})
    if out and out[-1]["role"] != "assistant":
        out.append({"role": "assistant", "text": "Okay."})
    return out


# -- the split ----------------------------------------------------------------------------


def make_split(conversations: Sequence[Conversation]) -> dict[str, list[str]]:
    """Per author, ids ordered by a hash of the id, alternately tuning and held-out: both
    halves get every voice, and nobody chose which conversation went where."""
    split: dict[str, list[str]] = {"tuning": [], "heldout": []}
    by_author: dict[str, list[str]] = {}
    for c in conversations:
        by_author.setdefault(c.author, []).append(c.id)
    for ids in by_author.values():
        ordered = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        for n, cid in enumerate(ordered):
            split["tuning" if n % 2 == 0 else "heldout"].append(cid)
    return {k: sorted(v) for k, v in split.items()}


def halves() -> dict[str, list[Conversation]]:
    split = json.loads(SPLIT.read_text(encoding="utf-8"))
    by_id = {c.id: c for c in load()}
    missing = set(by_id) - {cid for ids in split.values() for cid in ids}
    if missing:
        raise ValueError(f"conversations not in split.json: {sorted(missing)}")
    return {half: [by_id[i] for i in ids] for half, ids in split.items()}


# -- as captured traffic ------------------------------------------------------------------


def request_response(conv: Conversation) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(request body, response body, API path) as the agent would have sent them."""
    turns = conv.turns
    history, reply = turns[:-1], turns[-1]
    if conv.shape == "chat":
        messages = [_chat_message(t) for t in history]
        body = {
            "model": "gpt-4.1",
            "messages": [{"role": "system", "content": "You are a coding agent."}, *messages],
        }
        response = {
            "id": f"chatcmpl-{conv.id}",
            "object": "chat.completion",
            "model": "gpt-4.1",
            "choices": [{"index": 0, "finish_reason": "stop", "message": _chat_message(reply)}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return body, response, "/v1/chat/completions"
    messages = _anthropic_messages(history)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": messages,
    }
    response = {
        "id": f"msg_{conv.id}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": _anthropic_content(reply),
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    return body, response, "/v1/messages"


def _chat_message(turn: dict[str, Any]) -> dict[str, Any]:
    if turn["role"] == "tool":
        r = turn["tool_results"][0]
        return {"role": "tool", "tool_call_id": r["call_id"], "content": r["content"]}
    msg: dict[str, Any] = {"role": turn["role"], "content": turn.get("text") or None}
    if turn.get("tool_calls"):
        msg["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in turn["tool_calls"]
        ]
    return msg


def _anthropic_content(turn: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if turn.get("text"):
        blocks.append({"type": "text", "text": turn["text"]})
    for c in turn.get("tool_calls") or ():
        blocks.append(
            {
                "type": "tool_use",
                "id": c["id"],
                "name": c["name"],
                "input": json.loads(c["arguments"]),
            }
        )
    for r in turn.get("tool_results") or ():
        blocks.append(
            {
                "type": "tool_result",
                "tool_use_id": r["call_id"],
                "content": r["content"],
                "is_error": r["is_error"],
            }
        )
    return blocks


def _anthropic_messages(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool results ride in user turns; consecutive same-role turns merge, as the API wants."""
    out: list[dict[str, Any]] = []
    for t in turns:
        role = "user" if t["role"] in ("user", "tool") else "assistant"
        content = _anthropic_content(t)
        if not content:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(content)
        else:
            out.append({"role": role, "content": content})
    return out


# -- scoring ------------------------------------------------------------------------------


def matches(text: str, fact: Sequence[Sequence[str]]) -> bool:
    t = norm(text)
    return all(any(norm(alt) in t for alt in keyword) for keyword in fact)


@dataclass
class Score:
    expected: int = 0
    found: int = 0
    stored: int = 0
    correct: int = 0
    forbidden: int = 0  # must-not-store items
    violations: int = 0  # of those, stored anyway
    secrets: int = 0  # stored memories holding a secret (or its redaction marker)
    misses: list[str] = field(default_factory=list)
    junk: list[str] = field(default_factory=list)

    def add(self, conv: Conversation, memories: Sequence[str]) -> None:
        self.expected += len(conv.expect)
        self.stored += len(memories)
        self.forbidden += len(conv.forbid)
        for fact in conv.expect:
            if any(matches(m, fact) for m in memories):
                self.found += 1
            else:
                self.misses.append(f"{conv.id}: missed {' ; '.join('|'.join(k) for k in fact)}")
        for m in memories:
            if any(matches(m, fact) for fact in conv.expect):
                self.correct += 1
            else:
                self.junk.append(f"{conv.id}: unexpected {m!r}")
        for phrase in conv.forbid:
            if any(norm(phrase) in norm(m) for m in memories):
                self.violations += 1
                self.junk.append(f"{conv.id}: must-not {phrase!r} stored")
        for m in memories:
            if "[redacted" in m.casefold() or any(s in m for s in conv.secrets):
                self.secrets += 1

    @property
    def found_rate(self) -> float:
        return self.found / self.expected if self.expected else 0.0

    @property
    def precision(self) -> float:
        return self.correct / self.stored if self.stored else 1.0

    @property
    def violation_rate(self) -> float:
        return self.violations / self.forbidden if self.forbidden else 0.0
