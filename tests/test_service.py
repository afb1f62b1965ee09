"""`engram service`: rendered units for both platforms, install/uninstall in a temp home.

Every test runs with PATH pointing at an empty directory, so no real `systemctl` or
`launchctl` is ever invoked (it would act on the developer's own session); tests that
need a service manager put a fake one, which logs its arguments, on that PATH.
"""

from __future__ import annotations

import json
import plistlib
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engram import service, service_env, service_ops
from engram.cli.app import app

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")  # looked up before PATH is emptied
BASH = shutil.which("bash")
ROOT = Path(__file__).resolve().parent.parent
TRICKY = ["--flow-file", '/tmp/a b/it\'s "q" 50%h $HOME \\x.mitm', "--analyzer", "heuristic"]


@pytest.fixture(autouse=True)
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def fake_tool(bin_dir: Path, name: str, *, fail_on: str = "") -> Path:
    """A stand-in for systemctl/journalctl that logs its arguments (and fails on one verb)."""
    log = bin_dir / f"{name}.log"
    script = bin_dir / name
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n'
        + (f'case "$*" in *{fail_on}*) echo boom >&2; exit 1;; esac\n' if fail_on else "")
        + "exit 0\n"
    )
    script.chmod(0o755)
    return log


def linux_layout(home: Path) -> service.Layout:
    return service.layout_for(
        "linux", {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    )


def all_jobs(watcher_args: tuple[str, ...] = ()) -> list[service.Job]:
    return service.make_jobs(mitmweb=True, proxy=True, watcher_args=watcher_args)


def files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*")}


# --- rendering -----------------------------------------------------------------------------


def test_mitmweb_accepts_the_token_its_unit_only_has_a_hash_of() -> None:
    """The hash on mitmweb's command line is one the real mitmweb verifies the token
    against (and the same on every install, so a reinstall rewrites nothing)."""
    from tests.support.mitmweb import Mitmweb

    token = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    hashed = service.password_hash(token)
    assert hashed.startswith("$argon2id$") and token not in hashed
    assert service.password_hash(token) == hashed
    with Mitmweb(addon=False, password=hashed, client_token=token) as mitm:
        import requests

        ok = requests.get(mitm.url + "/flows", headers={"Authorization": f"Bearer {token}"})
        bad = requests.get(mitm.url + "/flows", headers={"Authorization": f"Bearer {hashed}"})
    assert ok.status_code == 200 and bad.status_code == 403


def test_systemd_units_restart_policy_and_no_secrets(isolated_home: Path) -> None:
    layout = linux_layout(isolated_home)
    plan = service.plan_install(layout, all_jobs(), {"ANTHROPIC_API_KEY": "sk-ant-secret-1"})
    text = {spec.path.name: spec.content.decode() for spec in plan.files}
    watcher, mitmweb, proxy = (
        text[f"{n}.service"] for n in ("engram", "engram-mitmweb", "engram-proxy")
    )
    for unit in (watcher, mitmweb, proxy):
        assert "Restart=on-failure\n" in unit and "RestartSec=5\n" in unit
        assert "EnvironmentFile=%h/.config/engram/service.env\n" in unit
        assert "WantedBy=default.target\n" in unit and "StandardOutput" not in unit
        exec_start = re.search(r"^ExecStart=(\S+)", unit, re.M)
        assert exec_start and Path(exec_start.group(1)).is_absolute()
        assert "sk-ant-secret-1" not in unit
    assert "RestartPreventExitStatus=2\n" in watcher and "RestartPreventExitStatus=2" in proxy
    assert "After=engram-mitmweb.service\nWants=engram-mitmweb.service\n" in watcher
    # The password never appears on a command line (`ps` shows it to every local user):
    # mitmweb gets its argon2 hash, with `$` escaped for systemd.
    assert "--set store_streamed_bodies=true --set web_password=$$argon2id$$" in mitmweb
    token = re.search(r"ENGRAM_MITMWEB_TOKEN='?([0-9a-f]{32})", text["service.env"])
    assert token and token.group(1) not in mitmweb
    assert f"-s {service.addon_path()} " in mitmweb and "--no-web-open-browser" in mitmweb
    assert "proxy --listen 127.0.0.1:8787 --upstream https://api.anthropic.com" in proxy
    env_copy = isolated_home / "copy.env"
    env_copy.write_text(text["service.env"])
    values = service_env.read_env_file(env_copy)
    assert values["ANTHROPIC_API_KEY"] == "sk-ant-secret-1"
    assert re.fullmatch(r"[0-9a-f]{32}", values["ENGRAM_MITMWEB_TOKEN"])
    assert values["ENGRAM_MITMWEB_TOKEN"] not in mitmweb


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("plain-1.0", "plain-1.0"),
        ("a b", '"a b"'),
        ("50%", "50%%"),
        ("$HOME", "$$HOME"),
        ('say "hi"', '"say \\"hi\\""'),
        ("", '""'),
        ("back\\slash", '"back\\\\slash"'),
        ("new\nline", '"new\\nline"'),
        (";", '";"'),
    ],
)
def test_systemd_quote(arg: str, quoted: str) -> None:
    assert service.systemd_quote(arg) == quoted


def test_launchd_plist_round_trip_and_wrapper_runs(isolated_home: Path, tmp_path: Path) -> None:
    layout = service.layout_for("macos", {"HOME": str(isolated_home)})
    plan = service.plan_install(layout, all_jobs(tuple(TRICKY)), {"ANTHROPIC_API_KEY": "k-1"})
    by_name = {spec.path.name: spec for spec in plan.files}
    assert set(by_name) == {
        f"io.github.engram.{n}.plist" for n in ("engram", "engram-mitmweb", "engram-proxy")
    } | {"service.env"}
    for job in plan.jobs:
        data = plistlib.loads(by_name[f"io.github.engram.{job.name}.plist"].content)
        assert data == service.launchd_dict(job, layout)
        assert data["Label"] == f"io.github.engram.{job.name}" and data["RunAtLoad"] is True
        assert data["KeepAlive"] == {"SuccessfulExit": False}
        assert data["ThrottleInterval"] == service.THROTTLE_INTERVAL
        assert data["StandardOutPath"] == str(isolated_home / f"Library/Logs/engram/{job.name}.log")
        assert "k-1" not in json.dumps(data)
    # The /bin/sh wrapper: env file exported, arguments intact, the password appended.
    layout.engram_dir.mkdir(parents=True)
    env_spec = by_name["service.env"]
    env_spec.path.write_bytes(env_spec.content)
    mitmweb = next(j for j in plan.jobs if j.name == service.MITMWEB)
    probe = tmp_path / "argv.py"
    probe.write_text(
        "import json, os, sys\n"
        "print(json.dumps([sys.argv[1:], os.environ.get('ANTHROPIC_API_KEY')]))\n"
    )
    for job in (plan.jobs[1], mitmweb):  # the watcher (with TRICKY) and mitmweb
        args = service.launchd_dict(job, layout)["ProgramArguments"]
        assert isinstance(args, list) and args[4] == job.argv[0]
        argv = [*args[:4], sys.executable, str(probe), *args[5:]]  # same args, a probe
        out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
        assert out[1] == "k-1"
        assert out[0][: len(job.argv) - 1] == list(job.argv[1:])
        if job is mitmweb:
            assert out[0][-2] == "--set"
            assert re.fullmatch(r"web_password=\$argon2id\$\S+", out[0][-1])
    shown = by_name["service.env"].shown
    assert "ANTHROPIC_API_KEY='****'" in shown and re.search(r"TOKEN='\*{4}[0-9a-f]{4}'", shown)


def test_env_file_refuses_values_it_cannot_quote() -> None:
    with pytest.raises(service.ConfigError):
        service_env.render_env_file({"ANTHROPIC_API_KEY": "it's"})


# --- systemd-analyze verify ----------------------------------------------------------------


def _verify(
    unit_dir: Path, home: Path, names: list[str], *, debug: bool = False
) -> subprocess.CompletedProcess[str]:
    runtime = home / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "PATH": "/usr/bin:/bin",
        "SYSTEMD_LOG_LEVEL": "debug" if debug else "notice",
        "SYSTEMD_PAGER": "",
    }
    return subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", "--user", *(str(unit_dir / n) for n in names)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed "
    "(scripts/test-setup.sh installs it on Debian when run as root)",
)
def test_systemd_analyze_verify_and_argument_splitting(isolated_home: Path) -> None:
    layout = linux_layout(isolated_home)
    sanity = isolated_home / "sanity"
    sanity.mkdir()
    (sanity / "ok.service").write_text("[Service]\nExecStart=/bin/true\n")
    probe = _verify(sanity, isolated_home, ["ok.service"])
    if probe.returncode != 0:
        pytest.skip(f"systemd-analyze verify cannot run here: {probe.stderr.strip()}")
    plan = service.plan_install(layout, all_jobs(tuple(TRICKY)), {})
    service_ops.apply_install(plan)
    names = [f"{job.name}.service" for job in plan.jobs]
    done = _verify(layout.unit_dir, isolated_home, names)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    # How systemd splits the watcher's ExecStart: its debug dump re-quotes for a POSIX shell.
    dump = _verify(layout.unit_dir, isolated_home, ["engram.service"], debug=True).stdout
    line = re.search(r"Command Line: (.*)", dump)
    assert line and BASH
    words = subprocess.run(
        [BASH, "-c", f"printf '%s\\0' {line.group(1)}"], capture_output=True, text=True, check=True
    ).stdout.split("\0")[:-1]
    # What systemd does at exec time: $$ -> $, $VAR and ${VAR} -> the variable's value.
    words = [
        re.sub(r"\$(\$|\{\w+\}|\w+)", lambda m: "$" if m[1] == "$" else f"<{m[1]}>", w)
        for w in words
    ]
    assert words == [*service.engram_argv(), "mitmproxy", *TRICKY]


# --- the CLI -------------------------------------------------------------------------------


def test_dry_run_prints_everything_and_writes_nothing(cli, isolated_home: Path) -> None:
    before = files(isolated_home)
    out = cli(
        "service",
        "install",
        "--mitmweb",
        "--dry-run",
        "--platform",
        "linux",
        env={"ANTHROPIC_API_KEY": "sk-ant-api03-topsecretvalue"},
    ).stdout
    assert files(isolated_home) == before
    assert "engram-mitmweb.service (mode 0644)" in out and "service.env (mode 0600)" in out
    assert "[Service]" in out and "ANTHROPIC_API_KEY='****alue'" in out
    assert "topsecret" not in out
    assert "systemctl --user daemon-reload" in out
    assert "systemctl --user restart engram-mitmweb.service engram.service" in out


def test_install_without_a_manager_writes_files_and_says_what_to_run(
    cli, isolated_home: Path
) -> None:
    result = cli(
        "service",
        "install",
        "--mitmweb",
        "--platform",
        "linux",
        "--",
        *TRICKY,
        env={"ANTHROPIC_API_KEY": "sk-ant-k"},
    )
    assert "systemctl cannot be used here" in result.stdout
    assert "  systemctl --user enable engram-mitmweb.service engram.service" in result.stdout
    layout = linux_layout(isolated_home)
    env_file = layout.env_file
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(layout.unit_file("engram").stat().st_mode) == 0o644
    values = service_env.read_env_file(env_file)
    assert values["ANTHROPIC_API_KEY"] == "sk-ant-k" and values["ENGRAM_DB"] == str(cli.db)
    assert (
        '"/tmp/a b/it\'s \\"q\\" 50%%h $$HOME \\\\x.mitm"' in layout.unit_file("engram").read_text()
    )
    manifest = json.loads(layout.manifest.read_text())
    assert manifest["jobs"] == ["engram-mitmweb", "engram"]
    assert set(manifest["files"]) == {
        str(layout.unit_file("engram-mitmweb")),
        str(layout.unit_file("engram")),
        str(env_file),
    }


def test_reinstall_keeps_password_and_drops_what_is_no_longer_asked_for(
    cli, isolated_home: Path
) -> None:
    layout = linux_layout(isolated_home)
    cli("service", "install", "--mitmweb", "--platform", "linux")
    first = service_env.read_env_file(layout.env_file)["ENGRAM_MITMWEB_TOKEN"]
    unit = layout.unit_file("engram").read_text()
    cli("service", "install", "--mitmweb", "--platform", "linux")
    assert service_env.read_env_file(layout.env_file)["ENGRAM_MITMWEB_TOKEN"] == first
    assert layout.unit_file("engram").read_text() == unit
    cli(
        "service",
        "install",
        "--mitmweb",
        "--platform",
        "linux",
        env={"ENGRAM_MITMWEB_TOKEN": "chosen-by-me"},
    )
    assert service_env.read_env_file(layout.env_file)["ENGRAM_MITMWEB_TOKEN"] == "chosen-by-me"
    out = cli("service", "install", "--platform", "linux").stdout
    assert f"removed {layout.unit_file('engram-mitmweb')}" in out
    assert not layout.unit_file("engram-mitmweb").exists()
    assert "ENGRAM_MITMWEB_TOKEN" not in service_env.read_env_file(layout.env_file)
    assert "After=" not in layout.unit_file("engram").read_text()
    assert "installed for linux" in cli.fail("service", "install", "--platform", "macos").stderr


def test_uninstall_removes_exactly_what_install_wrote(cli, isolated_home: Path) -> None:
    layout = linux_layout(isolated_home)
    layout.engram_dir.mkdir(parents=True)
    (layout.engram_dir / "config.toml").write_text("[analyzer]\nbackend = 'heuristic'\n")
    before = files(isolated_home)
    cli("service", "install", "--mitmweb", "--proxy", "--platform", "linux")
    (layout.unit_dir / "mine.service").write_text("[Service]\nExecStart=/bin/true\n")
    dry = cli("service", "uninstall", "--dry-run").stdout
    assert f"--- would remove {layout.env_file}" in dry
    assert "systemctl --user disable --now engram-mitmweb.service" in dry
    assert layout.env_file.exists()
    cli("service", "uninstall")
    assert files(isolated_home) == before | {
        ".config/systemd",
        ".config/systemd/user",
        ".config/systemd/user/mine.service",
    }
    assert "not installed" in cli.fail("service", "uninstall").stderr


def test_uninstall_refuses_a_manifest_pointing_elsewhere(cli, isolated_home: Path) -> None:
    cli("service", "install", "--platform", "linux")
    layout = linux_layout(isolated_home)
    victim = isolated_home / "precious.txt"
    victim.write_text("keep me")
    manifest = json.loads(layout.manifest.read_text())
    manifest["files"].append(str(victim))
    layout.manifest.write_text(json.dumps(manifest))
    assert "outside engram's directories" in cli.fail("service", "uninstall").stderr
    assert victim.exists() and layout.env_file.exists()


def test_with_a_service_manager_commands_run_in_order(
    cli, isolated_home: Path, fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "detect_platform", lambda: "linux")
    log = fake_tool(fake_bin, "systemctl")
    out = cli("service", "install", "--mitmweb").stdout
    assert "started: engram-mitmweb.service, engram.service" in out
    assert log.read_text().splitlines() == [
        "--user show-environment",
        "--user daemon-reload",
        "--user enable engram-mitmweb.service engram.service",
        "--user restart engram-mitmweb.service engram.service",
    ]
    log.unlink()
    cli("service", "status")  # passes the fake's exit status (0) through
    journal = fake_tool(fake_bin, "journalctl")
    cli("service", "logs", "-n", "7")
    assert journal.read_text() == (
        "--user -u engram-mitmweb.service -u engram.service -n 7 --no-pager\n"
    )
    log.unlink()
    cli("service", "uninstall")
    assert log.read_text().splitlines() == [
        "--user show-environment",
        "--user disable --now engram-mitmweb.service engram.service",
        "--user daemon-reload",
    ]


def test_a_failing_manager_command_still_leaves_the_files(
    cli, isolated_home: Path, fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "detect_platform", lambda: "linux")
    fake_tool(fake_bin, "systemctl", fail_on="restart")
    result = cli("service", "install", ok=False)
    assert result.exit_code == 1 and "restart engram.service` failed (1): boom" in result.stderr
    assert linux_layout(isolated_home).unit_file("engram").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--intervl", "3"], "No such option: --intervl"),
        (["--token", "s3cret"], "--token would put the secret in the unit file"),
        (["--once"], "--once exits after one poll"),
        (["--help"], "--help is not for a service"),
    ],
)
def test_bad_watcher_arguments_fail_at_install(
    cli, isolated_home: Path, args: list[str], message: str
) -> None:
    result = cli.fail("service", "install", "--platform", "linux", "--", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert not linux_layout(isolated_home).unit_dir.exists()


def test_status_and_logs_when_nothing_can_be_asked(cli, isolated_home: Path) -> None:
    assert "not installed" in cli.fail("service", "status").stderr
    cli("service", "install", "--platform", "macos")
    out = cli("service", "status").stdout
    assert "installed (macos): io.github.engram.engram" in out
    assert "launchctl print gui/" in out
    logs = cli("service", "logs", "-f").stdout
    assert f"tail -n 50 -F {isolated_home}/Library/Logs/engram/engram.log" in logs


def test_xdg_config_home_moves_the_units(isolated_home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "xdg"
    layout = service.layout_for(
        "linux", {"HOME": str(isolated_home), "XDG_CONFIG_HOME": str(elsewhere)}
    )
    assert layout.unit_file("engram") == elsewhere / "systemd/user/engram.service"
    unit = service.render_systemd(all_jobs()[1], layout)
    assert f"EnvironmentFile={elsewhere}/engram/service.env\n" in unit


# --- docs ----------------------------------------------------------------------------------


def test_docs_cover_every_option_and_constant() -> None:
    import typer.main

    doc = (ROOT / "docs" / "service.md").read_text()
    group = typer.main.get_command(app)
    service_group = group.commands["service"]  # type: ignore[attr-defined]
    for name, command in service_group.commands.items():
        assert f"engram service {name}" in doc, name
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in doc, f"docs/service.md misses {name} {opt}"
    for key, value in (
        ("RestartSec", service.RESTART_SEC),
        ("RestartPreventExitStatus", 2),
        ("StartLimitIntervalSec", service.START_LIMIT[0]),
        ("StartLimitBurst", service.START_LIMIT[1]),
        ("ThrottleInterval", service.THROTTLE_INTERVAL),
        ("TimeoutStopSec", service.STOP_TIMEOUT),
        ("ExitTimeOut", service.STOP_TIMEOUT),
    ):
        assert re.search(rf"{key}\W+{value}\b", doc), f"docs/service.md: {key} {value}"
    for fact in (
        service.LABEL_PREFIX,
        "service-manifest.json",
        "~/.config/engram/service.env",
        *service.MITMWEB_FLAGS,
    ):
        assert fact in doc, fact
    assert "(docs/service.md)" in (ROOT / "README.md").read_text()
