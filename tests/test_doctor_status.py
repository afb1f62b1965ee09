"""`engram doctor` against a healthy set-up and each broken part; `engram status`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli

from tests.support.llm_stub import LLMStub
from tests.support.mitmweb import Mitmweb, free_port

KEY = "sk-ant-api03-" + "Dr7fT2yU6iO0pA3sD7fG1hJ4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2k"


@pytest.fixture(scope="module")
def mitm() -> Iterator[Mitmweb]:
    with Mitmweb() as m:
        yield m


@pytest.fixture(scope="module")
def api() -> Iterator[LLMStub]:
    with LLMStub(api_keys={KEY}) as stub:
        yield stub


def doctor(cli: Cli, env: dict[str, str], ok: bool = True) -> dict:
    result = cli("doctor", "--json", env=env, ok=ok)
    assert (result.exit_code == 0) is ok, result.stdout
    return json.loads(result.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {f"{c['area']}/{c['name']}": c for c in report["checks"]}


def healthy_env(mitm: Mitmweb, api: LLMStub) -> dict[str, str]:
    return {
        "ENGRAM_MITMPROXY_URL": mitm.url,
        "ENGRAM_MITMWEB_TOKEN": mitm.password,
        "ENGRAM_ANALYZER_BACKEND": "anthropic",
        "ANTHROPIC_API_KEY": KEY,
        "ENGRAM_ANALYZER_BASE_URL": api.url,
    }


def test_healthy_setup(cli: Cli, mitm: Mitmweb, api: LLMStub) -> None:
    cli("add", "a fact so that the database exists")
    report = doctor(cli, healthy_env(mitm, api))
    checks = by_name(report)
    assert report["healthy"] is True
    for name in (
        "database/schema",
        "database/integrity",
        "mitmweb/reachable and token",
        "mitmweb/store_streamed_bodies",
        "mitmweb/engram addon",
        "analyzer/anthropic",
    ):
        assert checks[name]["status"] == "ok", checks[name]
    assert "no tokens spent" in checks["analyzer/anthropic"]["detail"]
    table = cli("doctor", env=healthy_env(mitm, api)).stdout
    assert (
        "mitmweb" in table
        and "all required checks pass" in cli("doctor", env=healthy_env(mitm, api)).stderr
    )


def test_each_broken_part(cli: Cli, mitm: Mitmweb, api: LLMStub, db_path: Path) -> None:
    cli("add", "a fact")
    env = healthy_env(mitm, api)
    checks = by_name(doctor(cli, {**env, "ENGRAM_MITMWEB_TOKEN": "wrong"}, ok=False))
    assert (
        checks["mitmweb/token"]["status"] == "fail"
        and "web_password" in checks["mitmweb/token"]["fix"]
    )
    checks = by_name(doctor(cli, {**env, "ANTHROPIC_API_KEY": KEY[:-4] + "zzzz"}, ok=False))
    assert checks["analyzer/anthropic"]["status"] == "fail"
    checks = by_name(
        doctor(
            cli, {**env, "ENGRAM_ANALYZER_BASE_URL": f"http://127.0.0.1:{free_port()}"}, ok=False
        )
    )
    assert "unreachable" in checks["analyzer/anthropic"]["detail"]
    checks = by_name(
        doctor(
            cli,
            {
                **env,
                "ENGRAM_MUNINN_ENABLED": "1",
                "MUNINN_MCP_URL": f"http://127.0.0.1:{free_port()}/mcp",
            },
            ok=False,
        )
    )
    assert checks["muninn/health"]["status"] == "fail"
    # mitmweb not running is a warning: engram run / engram proxy work without it.
    report = doctor(cli, {**env, "ENGRAM_MITMPROXY_URL": f"http://127.0.0.1:{free_port()}"})
    assert by_name(report)["mitmweb/reachable"]["status"] == "warn"
    db_path.write_bytes(b"not a database at all")
    checks = by_name(doctor(cli, env, ok=False))
    assert checks["database/schema"]["status"] == "fail"


def test_mitmweb_without_the_addon_is_a_warning(cli: Cli, api: LLMStub) -> None:
    with Mitmweb(addon=False) as bare:
        report = doctor(cli, {**healthy_env(bare, api)})
    checks = by_name(report)
    assert checks["mitmweb/store_streamed_bodies"]["status"] == "warn"
    assert "addon-path" in checks["mitmweb/engram addon"]["fix"]


def test_status(cli: Cli) -> None:
    cli("add", "Use pnpm", "--kind", "preference", "--scope", "/srv/app")
    data = cli.json("status")
    for key in (
        "last_poll",
        "captured_today",
        "pending",
        "failed",
        "failed_batches",
        "last_analyzer_run",
        "mirror_backlog",
        "memories_by_kind",
        "memories_by_project",
    ):
        assert key in data
    assert data["memories_by_kind"] == {"preference": 1}
    assert data["memories_by_project"] == {"/srv/app": 1}
    assert "captured today" in cli("status").stdout


def test_status_shows_the_last_poll(cli: Cli, mitm: Mitmweb) -> None:
    cli("mitmproxy", "--url", mitm.url, "--token", mitm.password, "--once", "--analyzer", "none")
    poll = cli.json("status")["last_poll"]
    assert poll["ok"] is True and poll["summary"].startswith("Fetched")
    cli(
        "mitmproxy", "--url", mitm.url, "--token", "wrong", "--once", "--analyzer", "none", ok=False
    )
    poll = cli.json("status")["last_poll"]
    assert poll["ok"] is False and "refused the token" in poll["summary"]
    assert "last poll:" in cli("status").stdout


def test_muninn_checks(cli: Cli, mitm: Mitmweb, api: LLMStub) -> None:
    from tests.support.muninn_stub import MuninnStub

    cli("add", "a fact")
    with MuninnStub(token="mdb_" + "ab12" * 12) as muninn:
        env = {
            **healthy_env(mitm, api),
            "ENGRAM_MUNINN_ENABLED": "1",
            "MUNINN_MCP_URL": muninn.url,
            "MUNINN_TOKEN": "mdb_" + "ab12" * 12,
        }
        checks = by_name(doctor(cli, env))
        assert checks["muninn/health"]["status"] == "ok"
        assert checks["muninn/token"]["status"] == "ok"
        assert "engram-global" in checks["muninn/vaults"]["detail"]
        checks = by_name(doctor(cli, {**env, "MUNINN_TOKEN": "mdb_" + "00" * 24}, ok=False))
        assert checks["muninn/token"]["status"] == "fail"


def test_the_analyzer_check_follows_autos_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auto` without a key runs Claude Code when it is on PATH: the doctor checks that,
    not a key nobody needs; a local backend without its model is a failure with the fix."""
    from engram.config import load
    from engram.doctor import Check
    from engram.doctor.services import check_analyzer

    bindir = tmp_path / "bin"
    bindir.mkdir()
    claude = bindir / "claude"
    claude.write_text("#!/bin/sh\nexit 0\n")
    claude.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))

    def check(**env: str) -> Check:
        [found] = check_analyzer(load(env=env))
        return found

    auto = check(ENGRAM_ANALYZER_BACKEND="auto")
    assert (auto.name, auto.status) == ("claude-code", "ok")
    assert str(claude) in auto.detail and "auto:" in auto.detail
    missing = check(
        ENGRAM_ANALYZER_BACKEND="claude-code", ENGRAM_ANALYZER_CLAUDE_COMMAND="no-such-claude"
    )
    assert missing.status == "fail" and "no-such-claude" in missing.detail
    local = check(
        ENGRAM_ANALYZER_BACKEND="local", ENGRAM_ANALYZER_LOCAL_MODEL=str(tmp_path / "x.gguf")
    )
    assert local.status == "fail"
    assert "engram models fetch" in local.fix or "engram-tap[local]" in local.fix
