"""`make demo`: the whole pipeline on loopback, with nothing to configure.

It starts a real mitmweb with engram's addon and a loopback stand-in for the Anthropic
API, sends a scripted multi-turn coding conversation through the proxy with the real
`anthropic` SDK (a preference, a failing command and its fix, a correction, "remember
that ..."), runs `engram mitmproxy --once` with the offline analyzer, and shows what
engram learned with `engram list`. Everything it started is stopped again; its files
are under .demo/.

`make demo-local` (`scripts/demo.py --analyzer local`) distils with the local model
instead: the best GGUF in .tools/models or <data dir>/models (`engram models fetch`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The stand-in API and the mitmweb launcher are test equipment (tests/support), not part
# of the installed package: the demo runs from a checkout.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROJECT_NAME = "shop"

SCRIPT: list[dict[str, Any]] = [
    {
        "say": "Set up the project and run the tests. We use pnpm in this repo, not npm.",
        "tool": ("Bash", {"command": "npm install", "description": "Install dependencies"}),
    },
    {
        "result": (
            "npm ERR! code EUSAGE\nnpm ERR! This project is configured to use pnpm\nExit code 1"
        ),
        "error": True,
        "tool": ("Bash", {"command": "pnpm install", "description": "Install with pnpm"}),
    },
    {"result": "Lockfile is up to date\nDone in 2.1s", "reply": "Dependencies are installed."},
    {
        "say": "Remember that the staging database runs on port 5433.",
        "reply": "Noted: staging Postgres is on 5433.",
    },
    {
        "say": "No, we run the tests with make test, not with pytest directly.",
        "reply": "Understood, I'll use make test.",
    },
    {"say": "I prefer small commits with imperative subject lines.", "reply": "Got it."},
]


def run(cmd: list[str], env: dict[str, str]) -> None:
    shown = ["engram", *cmd[3:]] if cmd[:3] == [sys.executable, "-m", "engram"] else cmd
    print(f"\n$ {shlex.join(shown)}", flush=True)
    subprocess.run(cmd, env=env, check=True)


def replies() -> list[Any]:
    """What the stand-in API answers, in order: one reply per scripted step."""
    from tests.support.llm_stub import Reply, ToolUse

    out = []
    for step in SCRIPT:
        if "tool" in step:
            name, args = step["tool"]
            out.append(Reply(text="", tool_calls=[ToolUse(name, args)]))
        else:
            out.append(Reply(text=step["reply"]))
    return out


def converse(stub_url: str, proxy_url: str, project: Path) -> int:
    """The agent's side: each request repeats the whole history, as real agents do."""
    import anthropic
    import httpx2

    client = anthropic.Anthropic(
        base_url=stub_url,
        api_key="sk-ant-api03-demo-" + "x" * 40,
        max_retries=0,
        http_client=httpx2.Client(proxy=proxy_url, trust_env=False, timeout=30),
    )
    system = f"You are a coding agent.\nPrimary working directory: {project}\n"
    messages: list[dict[str, Any]] = []
    sent = 0
    pending_tool: str | None = None
    for step in SCRIPT:
        if "say" in step:
            messages.append({"role": "user", "content": step["say"]})
            print(f"  user: {step['say']}", flush=True)
        else:
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": pending_tool,
                            "content": step["result"],
                            "is_error": step.get("error", False),
                        }
                    ],
                }
            )
            print(f"  tool result: {step['result'].splitlines()[-1]}", flush=True)
        message = client.messages.create(
            model="claude-sonnet-5",
            max_tokens=512,
            system=system,
            messages=messages,
            extra_headers={"X-Claude-Code-Session-Id": "demo-1"},
        )
        sent += 1
        content = [b.model_dump(exclude_none=True) for b in message.content]
        messages.append({"role": "assistant", "content": content})
        for block in content:
            if block["type"] == "tool_use":
                pending_tool = block["id"]
                print(f"  agent runs: {block['input']['command']}", flush=True)
            elif block["type"] == "text" and block["text"]:
                print(f"  agent: {block['text']}", flush=True)
    return sent


def local_model() -> Path | None:
    from engram.analyzer import models

    for name in models.PREFERENCE:
        for directory in (ROOT / ".tools" / "models", models.models_dir()):
            if (directory / models.MODELS[name].file).is_file():
                return directory / models.MODELS[name].file
    return None


def main() -> int:
    from tests.support.llm_stub import LLMStub
    from tests.support.mitmweb import Mitmweb

    started = time.monotonic()
    root = Path.cwd() / ".demo"
    shutil.rmtree(root, ignore_errors=True)
    project = root / PROJECT_NAME
    project.mkdir(parents=True)
    env = {
        **os.environ,
        "ENGRAM_DB": str(root / "engram.db"),
        "ENGRAM_CONFIG": "",
        "ANTHROPIC_API_KEY": "",
    }
    engram = [sys.executable, "-m", "engram"]
    analyzer = "local" if "--analyzer" in sys.argv and "local" in sys.argv else "heuristic"
    if analyzer == "local":
        model = local_model()
        if model is None:
            print("no local model: run `engram models fetch 0.5b` (or make test-setup)")
            return 1
        env["ENGRAM_ANALYZER_LOCAL_MODEL"] = str(model)
        print(f"analyzer: local, {model.name}", flush=True)
    print(
        "engram demo: mitmweb + engram's addon, a loopback Anthropic API, the anthropic SDK,"
        f"\nthe watcher with the offline analyzer. Files under {root}.",
        flush=True,
    )
    with LLMStub(replies()) as stub, Mitmweb() as mitm:
        print(
            f"\nmitmweb on {mitm.url} (proxy {mitm.proxy_url}); the agent's conversation:",
            flush=True,
        )
        sent = converse(stub.url, mitm.proxy_url, project)
        time.sleep(0.3)
        env["ENGRAM_MITMWEB_TOKEN"] = mitm.password
        run([*engram, "mitmproxy", "--url", mitm.url, "--once", "--analyzer", analyzer], env)
    run([*engram, "journal"], env)
    run([*engram, "list"], env)
    print(
        f"\n{sent} requests captured and analyzed in {time.monotonic() - started:.0f} s; "
        "mitmweb and the stand-in API are stopped.",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
