"""Configuration: defaults < config file < environment < command-line flags.

Every setting is declared once, in config_sections.py, as a dataclass field carrying its
default, its environment variables, whether it is a secret and a help line. The loader
(here), the type checks (config_values.py), `engram config show` and the configuration
reference in docs/ all read these declarations, so a setting cannot exist in one place
and be missing in another.

This module is the front door: `load` builds the effective `Config` from the file and
the environment (the caller applies flags), and every name engram imports from
`engram.config` is importable from here.
"""

from __future__ import annotations

import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engram.config_sections import (
    DEFAULT_PRICES,
    SECTION_TYPES,
    SECTIONS,
    AnalyzerConfig,
    CaptureConfig,
    McpConfig,
    MitmproxyConfig,
    MuninnConfig,
    ProxyConfig,
    RecallConfig,
    RedactConfig,
    StoreConfig,
    TranscriptsConfig,
    setting,
)
from engram.config_values import Setting, all_settings, coerce, parse_env, settings_by_name
from engram.errors import ConfigError

__all__ = [
    "DEFAULT_PRICES",
    "SECTIONS",
    "SECTION_TYPES",
    "AnalyzerConfig",
    "CaptureConfig",
    "Config",
    "McpConfig",
    "MitmproxyConfig",
    "MuninnConfig",
    "ProxyConfig",
    "RecallConfig",
    "RedactConfig",
    "Setting",
    "StoreConfig",
    "TranscriptsConfig",
    "all_settings",
    "coerce",
    "effective",
    "load",
    "mask",
    "parse_env",
    "setting",
    "settings_by_name",
]


# Old names that still work, with a warning: round 1 kept the analysis schedule under
# [mitmproxy], but `engram proxy` and the transcript follower use it as well.
DEPRECATED_KEYS = {
    "mitmproxy.batch": "analyzer.batch",
    "mitmproxy.max_wait": "analyzer.max_wait",
}
DEPRECATED_ENV = {
    "ENGRAM_MITMPROXY_BATCH": "ENGRAM_ANALYZER_BATCH",
    "ENGRAM_MITMPROXY_MAX_WAIT": "ENGRAM_ANALYZER_MAX_WAIT",
}


@dataclass
class Config:
    store: StoreConfig = field(default_factory=StoreConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    mitmproxy: MitmproxyConfig = field(default_factory=MitmproxyConfig)
    transcripts: TranscriptsConfig = field(default_factory=TranscriptsConfig)
    analyzer: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    recall: RecallConfig = field(default_factory=RecallConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    muninn: MuninnConfig = field(default_factory=MuninnConfig)
    redact: RedactConfig = field(default_factory=RedactConfig)
    mcp: McpConfig = field(default_factory=McpConfig)
    file: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)
    # Deprecated names that were used; the CLI prints each once as a warning.
    warnings: list[str] = field(default_factory=list)

    def get(self, name: str) -> Any:
        section, key = name.split(".", 1)
        return getattr(getattr(self, section), key)

    def set(self, name: str, value: Any, source: str) -> None:
        declared = settings_by_name().get(name)
        if declared is not None:
            value = declared.check(value, source)
        section, key = name.split(".", 1)
        setattr(getattr(self, section), key, value)
        self.sources[name] = source

    def override(self, name: str, value: Any) -> None:
        """Apply a command-line flag; None means the flag was not given."""
        if value is not None:
            self.set(name, value, "flag")


def load(path: str | Path | None = None, env: typing.Mapping[str, str] | None = None) -> Config:
    """Build the effective configuration (flags are applied afterwards by the caller)."""
    from engram.paths import default_config_path

    env = os.environ if env is None else env
    cfg = Config()
    explicit = path if path is not None else env.get("ENGRAM_CONFIG") or None
    file = Path(explicit).expanduser() if explicit else default_config_path()
    settings = {s.name: s for s in all_settings()}
    for name in settings:
        cfg.sources[name] = "default"

    if file.exists() or explicit:
        cfg.file = file
        _apply_file(cfg, file, settings)

    for s in settings.values():
        for var in s.env:
            if var in env:
                try:
                    cfg.set(s.name, parse_env(env[var], s.type), f"env:{var}")
                except ValueError as exc:
                    raise ConfigError(
                        f"environment variable {var} (for {s.name}) must be {exc}, got {env[var]!r}"
                    ) from None
                if var in DEPRECATED_ENV:
                    cfg.warnings.append(
                        f"{var} is deprecated; use {DEPRECATED_ENV[var]} (same meaning)"
                    )
                break
    return cfg


# Keys a config file may still hold from an older engram: ignored, with one warning,
# instead of refusing to start (an upgrade must not break a working setup).
RETIRED = {
    "recall.fusion": "recall now ranks with its fitted gate model (docs/recall.md)",
}


def _apply_file(cfg: Config, file: Path, settings: dict[str, Setting]) -> None:
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    for section, table in data.items():
        if section not in SECTION_TYPES:
            raise ConfigError(f"{file}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{file}: {section} must be a table ([{section}])")
        for key, value in table.items():
            name = f"{section}.{key}"
            if name in DEPRECATED_KEYS:
                new = DEPRECATED_KEYS[name]
                cfg.warnings.append(f"{file}: {name} is deprecated; use {new} (same meaning)")
                name = new
            s = settings.get(name)
            if s is None and name in RETIRED:
                cfg.warnings.append(f"{file}: {name} is ignored: {RETIRED[name]}")
                continue
            if s is None:
                raise ConfigError(f"{file}: unknown key {name}")
            try:
                cfg.set(name, coerce(value, s.type), f"file:{file}")
            except ValueError as exc:
                raise ConfigError(f"{file}: {name} must be {exc}, got {value!r}") from None


def mask(value: Any) -> str:
    if value in (None, ""):
        return "(not set)"
    text = str(value)
    return "****" + text[-4:] if len(text) >= 12 else "****"


def effective(cfg: Config) -> list[dict[str, Any]]:
    """Rows for `engram config show`: every setting, its value (secrets masked), its source."""
    rows = []
    for s in all_settings():
        value = cfg.get(s.name)
        rows.append(
            {
                "key": s.name,
                "value": mask(value) if s.secret else value,
                "source": cfg.sources.get(s.name, "default"),
                "secret": s.secret,
            }
        )
    return rows
