"""Configuration precedence, validation and `engram config show`."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli

from engram import config
from engram.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_default_file_env_flag(cli: Cli, tmp_path: Path, isolated_home: Path) -> None:
    cfg = config.load()
    assert cfg.store.busy_timeout_ms == 5000 and cfg.sources["store.busy_timeout_ms"] == "default"
    assert cfg.file is None

    default_file = isolated_home / ".config" / "engram" / "config.toml"
    default_file.parent.mkdir(parents=True)
    write(default_file, "[store]\nbusy_timeout_ms = 1234\n")
    cfg = config.load()
    assert cfg.store.busy_timeout_ms == 1234 and cfg.file == default_file

    explicit = write(tmp_path / "c.toml", "[store]\nbusy_timeout_ms = 2000\npath = '/x/e.db'\n")
    cfg = config.load(explicit, env={"ENGRAM_STORE_BUSY_TIMEOUT_MS": "3000"})
    assert cfg.store.busy_timeout_ms == 3000
    assert cfg.sources["store.busy_timeout_ms"] == "env:ENGRAM_STORE_BUSY_TIMEOUT_MS"
    assert cfg.store.path == "/x/e.db" and cfg.sources["store.path"] == f"file:{explicit}"
    cfg = config.load(env={"ENGRAM_CONFIG": str(explicit), "ENGRAM_DB": "/y/e.db"})
    assert cfg.store.path == "/y/e.db" and cfg.sources["store.path"] == "env:ENGRAM_DB"
    cfg.override("store.path", "/z/e.db")
    assert cfg.sources["store.path"] == "flag"

    shown = cli.json("config", "show", env={"ENGRAM_CONFIG": str(explicit)})
    rows = {r["key"]: r for r in shown["settings"]}
    # The --db flag of the test runner wins over the file.
    assert rows["store.path"]["source"] == "flag"
    assert rows["store.busy_timeout_ms"] == {
        "key": "store.busy_timeout_ms",
        "value": 2000,
        "source": f"file:{explicit}",
        "secret": False,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[store]\nbusy_timeout_ms = 'soon'\n", "store.busy_timeout_ms must be an integer"),
        ("[store]\nbusy_timeout_ms = true\n", "must be an integer"),
        ("[store]\npth = 'x'\n", "unknown key store.pth"),
        ("[storage]\npath = 'x'\n", "unknown section [storage]"),
        ("store = 3\n", "must be a table"),
        ("[store\n", "invalid TOML"),
    ],
)
def test_bad_files_name_key_and_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_bad_config_exits_2_with_one_line(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", "[store]\nnope = 1\n")
    result = cli("--config", str(path), "list", ok=False)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "unknown key store.nope" in result.stderr
    result = cli("list", ok=False, env={"ENGRAM_STORE_BUSY_TIMEOUT_MS": "abc"})
    assert result.exit_code == 2 and "ENGRAM_STORE_BUSY_TIMEOUT_MS" in result.stderr
    assert cli("--config", str(tmp_path / "missing.toml"), "list", ok=False).exit_code == 2


def test_env_and_type_coercion() -> None:
    assert config.parse_env("yes", bool) is True and config.parse_env("0", bool) is False
    assert config.parse_env("a, b,,c", list[str]) == ["a", "b", "c"]
    assert config.parse_env('["x"]', list[str]) == ["x"]
    assert config.parse_env("", str | None) is None
    assert config.parse_env("2.5", float) == 2.5
    assert config.coerce(3, float) == 3.0
    assert config.coerce({"m": 1}, dict[str, float]) == {"m": 1.0}
    for value, tp in ((1, str), ("x", int), ([1], list[str]), (True, float)):
        with pytest.raises(ValueError):
            config.coerce(value, tp)


def test_mask_hides_secrets() -> None:
    assert config.mask("sk-ant-api03-abcdefghijklmnop") == "****mnop"
    assert config.mask("short") == "****"
    assert config.mask(None) == "(not set)"


def test_every_setting_documented_in_example() -> None:
    example = (Path(__file__).parent.parent / "config.example.toml").read_text()
    for s in config.all_settings():
        assert f"[{s.section}]" in example
        assert f"{s.key} =" in example or f"[{s.name}]" in example, (
            f"{s.name} missing from config.example.toml"
        )


def test_every_number_declares_its_range() -> None:
    missing = [s.name for s in config.all_settings() if s.numeric and s.min is None]
    assert not missing, f"numeric settings without a range: {missing}"


@pytest.mark.parametrize(
    ("var", "value", "key"),
    [
        ("ENGRAM_MITMPROXY_INTERVAL", "-1", "mitmproxy.interval"),
        ("ENGRAM_PROXY_MAX_BODY_MB", "-1", "proxy.max_body_mb"),
        ("ENGRAM_RECALL_MIN_SCORE", "nan", "recall.min_score"),
        ("ENGRAM_STORE_BUSY_TIMEOUT_MS", "-5", "store.busy_timeout_ms"),
        ("ENGRAM_ANALYZER_CANDIDATES", "-1", "analyzer.candidates"),
        ("ENGRAM_ANALYZER_BATCH", "-3", "analyzer.batch"),
        ("ENGRAM_ANALYZER_TIMEOUT", "nan", "analyzer.timeout"),
        ("ENGRAM_ANALYZER_TIMEOUT", "inf", "analyzer.timeout"),
    ],
)
def test_out_of_range_numbers_are_config_errors(cli: Cli, var: str, value: str, key: str) -> None:
    result = cli("list", ok=False, env={var: value})
    assert result.exit_code == 2
    assert key in result.stderr and f"env:{var}" in result.stderr


def test_ranges_hold_for_the_file_and_for_flags(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[recall]\nmin_score = 1.5\n")
    result = cli("--config", str(bad), "list", ok=False)
    assert result.exit_code == 2 and "recall.min_score" in result.stderr
    assert f"file:{bad}" in result.stderr
    cfg = config.load(env={})
    with pytest.raises(ConfigError, match=r"analyzer.batch must be between 1 and .* \(flag\)"):
        cfg.override("analyzer.batch", 0)


def test_renamed_keys_still_work_with_a_warning(cli: Cli, tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text("[mitmproxy]\nbatch = 3\nmax_wait = 7.5\n")
    cfg = config.load(old, env={"ENGRAM_MITMPROXY_BATCH": "4"})
    assert cfg.analyzer.batch == 4 and cfg.analyzer.max_wait == 7.5
    assert len(cfg.warnings) == 3 and all("deprecated" in w for w in cfg.warnings)
    result = cli("--config", str(old), "list")
    assert "warning: " in result.stderr and "analyzer.batch" in result.stderr


def test_a_retired_key_is_ignored_with_a_warning(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text('[recall]\nfusion = "weighted"\nmax_memories = 3\n')
    cfg = config.load(path=file, env={})
    assert cfg.recall.max_memories == 3
    assert any("recall.fusion is ignored" in w for w in cfg.warnings)
