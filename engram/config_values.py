"""What a declared setting is and how its values are checked: types, ranges, environment
strings, and the one-line messages that name the key and where a bad value came from.

`all_settings()` flattens the section dataclasses (config_sections.py) into `Setting`
rows; the loader, `engram config show` and docs_gen read those rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from engram.config_sections import SECTION_TYPES
from engram.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    type: Any
    default: Any
    help: str
    env: tuple[str, ...]
    secret: bool
    min: float | None = None
    max: float | None = None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def numeric(self) -> bool:
        args = typing.get_args(self.type) or (self.type,)
        return any(a in (int, float) for a in args)

    def check(self, value: Any, source: str) -> Any:
        """The value if it is within this setting's range; else a ConfigError naming the
        key and where the value came from."""
        if not self.numeric or value is None or isinstance(value, bool):
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{self.name} must be a finite number, got {value!r} ({source})")
        low, high = self.min, self.max
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (
                f"between {_num(low)} and {_num(high)}"
                if low is not None and high is not None
                else f"at least {_num(low)}"
                if low is not None
                else f"at most {_num(high)}"
            )
            raise ConfigError(f"{self.name} must be {bounds}, got {value!r} ({source})")
        return value


def _num(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def all_settings() -> list[Setting]:
    out = []
    for section, cls in SECTION_TYPES.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            missing = f.default is dataclasses.MISSING
            default = f.default_factory() if missing else f.default  # type: ignore[operator]
            env = (f"ENGRAM_{section.upper()}_{f.name.upper()}", *f.metadata["env"])
            out.append(
                Setting(
                    section,
                    f.name,
                    hints[f.name],
                    default,
                    f.metadata["help"],
                    env,
                    f.metadata["secret"],
                    f.metadata.get("min"),
                    f.metadata.get("max"),
                )
            )
    return out


_BY_NAME: dict[str, Setting] = {}


def settings_by_name() -> dict[str, Setting]:
    if not _BY_NAME:
        _BY_NAME.update((s.name, s) for s in all_settings())
    return _BY_NAME


def _type_name(tp: Any) -> str:
    if tp in (str, int, float, bool):
        return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}[tp]
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_name(args[0]) if len(args) == 1 else " or ".join(map(_type_name, args))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0]).removeprefix('a ')}s"
    if origin is dict:
        return "a table"
    return str(tp)


def coerce(value: Any, tp: Any) -> Any:
    """Check a TOML value against a declared type; raise ValueError with the expectation."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except ValueError:
                continue
        raise ValueError(_type_name(tp))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(_type_name(tp))
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(_type_name(tp))
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(_type_name(tp))
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(_type_name(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, list):
            return [coerce(v, item) for v in value]
        raise ValueError(_type_name(tp))
    if origin is dict:
        _key, item = typing.get_args(tp)
        if isinstance(value, dict):
            return {str(k): coerce(v, item) for k, v in value.items()}
        raise ValueError(_type_name(tp))
    raise ValueError(_type_name(tp))


def parse_env(raw: str, tp: Any) -> Any:
    """Environment values are strings: read booleans, numbers and lists from them."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw == "" and type(None) in typing.get_args(tp):
            return None
        return parse_env(raw, args[0])
    if tp is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(_type_name(tp))
    if tp in (int, float):
        try:
            return tp(raw.strip())
        except ValueError:
            raise ValueError(_type_name(tp)) from None
    if origin in (list, dict):
        text = raw.strip()
        if text.startswith(("[", "{")):
            try:
                return coerce(json.loads(text), tp)
            except json.JSONDecodeError:
                raise ValueError(_type_name(tp)) from None
        if origin is list:
            return coerce([p.strip() for p in text.split(",") if p.strip()], tp)
        raise ValueError(_type_name(tp))
    return raw
