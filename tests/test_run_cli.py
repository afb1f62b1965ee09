"""`engram run` / `engram proxy` / `engram doctor` as a new user meets them (issue 11's
first hour, issue 18): engram's own reports on stderr, a missing agent said before any
banner, a busy port in one line, what each agent needs, and what `--dry-run` will set."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.agents import AGENTS_BIN, script_agent
from tests.support.llm_stub import LLMStub

AGENT = """#!{python}
import os, sys, json, urllib.request
req = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", method="POST",
    data=json.dumps({{"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [
        {{"role": "user", "content": "We deploy with make ship."}}]}}).encode(),
    headers={{"x-api-key": "sk-ant-api03-" + "q" * 40, "content-type": "application/json"}})
print(json.dumps({{"result": json.load(urllib.request.urlopen(req))["content"][0]["text"]}}))
"""


def engram(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engram", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_engram_run_keeps_stdout_for_the_agent(tmp_path: Path) -> None:
    env = script_agent(tmp_path, AGENT.format(python=sys.executable))
    with LLMStub() as stub:
        done = engram(
            "run",
            "claude",
            "--upstream",
            stub.url,
            "--analyzer",
            "heuristic",
            cwd=tmp_path,
            env=env,
        )
    assert done.returncode == 0, done.stderr
    # `engram run claude -p ... --output-format json | jq` works: only the agent's JSON.
    assert json.loads(done.stdout) == {"result": "ok: We deploy with make ship."}
    assert "1 exchange, 0 with memory" in done.stderr  # the run summary: stderr only


def test_a_missing_agent_is_an_error_before_any_banner(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent),
        "ENGRAM_DB": str(tmp_path / "e.db"),
    }
    done = engram("run", "codex", "--", "exec", "hi", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("error: codex is not installed")
    assert "->" not in done.stderr  # no proxy banner first
    assert not (tmp_path / "e.db").exists()  # nothing was started


def test_a_busy_port_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        env = {**os.environ, "ENGRAM_DB": str(tmp_path / "e.db")}
        done = engram(
            "proxy", "--listen", f"127.0.0.1:{port}", "--analyzer", "none", cwd=tmp_path, env=env
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "Unclosed" not in done.stderr


def test_dry_run_says_what_codex_gets(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{AGENTS_BIN}:{os.environ['PATH']}",
        "OPENAI_API_KEY": "sk-proj-" + "x1" * 24,
    }
    done = engram("run", "codex", "--dry-run", "--", "exec", "hi", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "routing:   -c openai_base_url" in out and "env OPENAI_BASE_URL" in out
    assert 'openai_base_url="http://127.0.0.1:<port>/v1"' in out
    assert "OPENAI_BASE_URL=http://127.0.0.1:<port>/v1" in out
    if (AGENTS_BIN / "codex").exists():
        assert "0.171.0" in out.splitlines()[0]  # the installed release, detected


def test_doctor_lists_agents_and_what_gemini_needs(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "OPENAI_", "CODEX_"))
    }
    env.update(PATH=f"{AGENTS_BIN}:{os.environ['PATH']}", ENGRAM_DB=str(tmp_path / "e.db"))
    done = engram("doctor", "--json", cwd=tmp_path, env=env)
    checks = [c for c in json.loads(done.stdout)["checks"] if c["area"] == "agents"]
    names = {c["name"]: c for c in checks}
    assert {"claude", "codex", "gemini", "qwen", "opencode", "aider", "grok"} <= set(names)
    assert names["Claude Code hook"]["status"] == "skip"
    if (AGENTS_BIN / "gemini").exists():
        assert names["gemini"]["status"] == "ok" and "0.61.0" in names["gemini"]["detail"]
        ready = names["gemini through engram"]
        assert ready["status"] == "warn"
        assert "GEMINI_API_KEY" in ready["detail"] and "selectedType" in ready["detail"]
