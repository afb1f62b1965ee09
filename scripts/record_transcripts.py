"""Record the transcript fixtures in tests/fixtures/transcripts from the real agent CLIs.

Each agent in .tools/agents runs a short scripted session (a couple of prompts, resumed,
with a tool call) against the loopback LLM stand-in, with its own HOME; the files it
writes are copied with the temporary paths replaced by /home/dev and strings longer
than 4,000 characters (system prompts, tool listings the agents log) shortened, so the
fixtures stay small and keep every record and shape the agent wrote.

    .venv/bin/python scripts/record_transcripts.py

Needs the agents installed (`make test-setup`); nothing leaves the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.agents import (  # noqa: E402
    agent_bin,
    agent_env,
    codex_provider_args,
    gemini_api_key_mode,
    qwen_openai_args,
)
from tests.support.llm_formats import last_user_text, response_schema  # noqa: E402
from tests.support.llm_stub import Reply, ToolUse, running_stub  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "transcripts"
FAKE_ANTHROPIC = (
    "sk-ant-api03-" + "Zq8wE4rT2yU6iO0pA3sD7fG1hJ4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2kL6zX"
)
FAKE_OPENAI = "sk-proj-" + "Yt7uI9oP1aS3dF5gH7jK9lZ2xC4vB6nM8qW0eR2tY4uI6oP8aS1dF3gH5jK7lZ9x"
FAKE_GEMINI = "AIzaSyD" + "k3J9x2LqP0vWm8Nc5Rt7Yb1Hs4Fg6Ue2Zo"
LIMIT = 1000  # characters of a string in a record that is not conversation
ITEMS = 8  # items of a list in such a record


def script(project: Path, tool: str, argument: str) -> Any:
    def reply(rec: Any) -> Reply | None:
        body = rec.json if isinstance(rec.json, dict) else {}
        if response_schema(body) is not None:
            return None  # the stub answers schema requests itself
        turns = body.get("messages") or body.get("contents") or body.get("input") or []
        last = json.dumps(turns[-1]) if turns else ""
        if any(k in last for k in ("tool_result", "functionResponse", '"role": "tool"')):
            return Reply("The notes say the build uses make.", thinking="the tool answered")
        words = last_user_text(body)
        if "SUBAGENT" in json.dumps(turns[:1]):
            return Reply("subagent: notes.txt says the build uses make")
        if "read notes" in words:
            call = ToolUse(tool, {argument: str(project / "notes.txt")})
            return Reply("Let me read it.", tool_calls=[call], thinking="I should look")
        if "delegate" in words:
            call = ToolUse(
                "Agent",
                {
                    "description": "summarise notes",
                    "prompt": "SUBAGENT: summarise notes.txt",
                    "subagent_type": "general-purpose",
                },
            )
            return Reply("Delegating.", tool_calls=[call])
        return None

    return reply


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {done.stderr[-2000:]}")
    return done.stdout


def shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > LIMIT:
        return value[:LIMIT] + "…[shortened for the fixture]"
    if isinstance(value, dict):
        return {k: shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten(v) for v in value[:ITEMS]]
    return value


def conversation(record: dict[str, Any]) -> bool:
    """Records whose content is the conversation itself: kept exactly as written."""
    if record.get("type") in ("user", "assistant", "tool_result", "gemini"):
        return True
    payload = record.get("payload")
    return (
        isinstance(payload, dict)
        and record.get("type") == "response_item"
        and (payload.get("role") in ("user", "assistant") or payload.get("type") != "message")
    )


def copy(src: Path, dst: Path, replace: dict[str, str]) -> None:
    lines = []
    for raw in src.read_text(encoding="utf-8").splitlines():
        record = json.loads(raw)
        if not conversation(record):
            record = shorten(record)
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        for old, new in replace.items():
            text = text.replace(old, new)
        lines.append(text)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")


def record(agent: str, work: Path) -> None:
    home, project = work / "home", work / "shop"
    home.mkdir()
    project.mkdir()
    (project / "notes.txt").write_text("the build uses make\n")
    replace = {str(project): "/home/dev/shop", str(home): "/home/dev"}
    env_base = {"PWD": str(project)}
    if agent == "claude":
        tool = ("Read", "file_path")
    elif agent in ("gemini",):
        tool = ("read_file", "file_path")
    else:
        tool = ("read_file", "absolute_path")
    with running_stub(script(project, *tool)) as stub:
        bin_ = str(agent_bin(agent))
        if agent == "claude":
            env = agent_env(
                home, ANTHROPIC_BASE_URL=stub.url, ANTHROPIC_API_KEY=FAKE_ANTHROPIC, **env_base
            )
            first = run(
                [bin_, "-p", "We use pytest. Remember that.", "--output-format", "json"],
                project,
                env,
            )
            sid = json.loads(first)["session_id"]
            for prompt in (
                "please read notes.txt",
                "now delegate to a subagent",
                "/compact",
                "we deploy with ansible",
            ):
                run(
                    [bin_, "-p", prompt, "--resume", sid, "--allowedTools", "Read,Agent"],
                    project,
                    env,
                )
            base = home / ".claude" / "projects"
            for path in base.rglob("*.jsonl"):
                rel = (
                    path.relative_to(base)
                    .as_posix()
                    .replace(project.as_posix().replace("/", "-"), "-home-dev-shop")
                )
                copy(path, OUT / "claude" / rel, replace)
        elif agent == "codex":
            env = agent_env(home, OPENAI_API_KEY=FAKE_OPENAI, **env_base)
            provider = codex_provider_args(stub.url)
            run(
                [bin_, "exec", "--skip-git-repo-check", *provider, "We use pytest. Remember that."],
                project,
                env,
            )
            run(
                [
                    bin_,
                    "exec",
                    "--skip-git-repo-check",
                    *provider,
                    "resume",
                    "--last",
                    "we deploy with ansible",
                ],
                project,
                env,
            )
            for path in (home / ".codex" / "sessions").rglob("*.jsonl"):
                copy(path, OUT / "codex" / path.name, replace)
        elif agent == "gemini":
            gemini_api_key_mode(home)
            env = agent_env(
                home,
                GEMINI_API_KEY=FAKE_GEMINI,
                GOOGLE_GEMINI_BASE_URL=stub.url,
                GEMINI_CLI_TRUST_WORKSPACE="true",
                **env_base,
            )
            run([bin_, "-p", "We use pytest. Remember that."], project, env)
            run([bin_, "-p", "please read notes.txt", "--resume", "latest", "--yolo"], project, env)
            for path in (home / ".gemini" / "tmp").rglob("chats/*.jsonl"):
                copy(path, OUT / "gemini" / "shop" / "chats" / path.name, replace)
            (OUT / "gemini" / "shop" / ".project_root").write_text("/home/dev/shop")
        elif agent == "qwen":
            env = agent_env(home, OPENAI_API_KEY=FAKE_OPENAI, **env_base)
            base = qwen_openai_args(stub.url, FAKE_OPENAI)
            run([bin_, *base, "-p", "We use pytest. Remember that."], project, env)
            run([bin_, *base, "-p", "please read notes.txt", "--continue", "--yolo"], project, env)
            for path in (home / ".qwen" / "projects").rglob("chats/*.jsonl"):
                copy(path, OUT / "qwen" / path.name, replace)


def main() -> None:
    agents = sys.argv[1:] or ["claude", "codex", "gemini", "qwen"]
    for agent in agents:
        shutil.rmtree(OUT / agent, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix=f"engram-rec-{agent}-") as tmp:
            record(agent, Path(tmp))
        print(f"recorded {agent}: {sorted(p.name for p in (OUT / agent).rglob('*.jsonl'))}")


if __name__ == "__main__":
    main()
