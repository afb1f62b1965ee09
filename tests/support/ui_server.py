"""`engram ui` as a user starts it: a subprocess on a free loopback port, its URL read
from its stdout, stopped (SIGTERM, then kill) when the test is done."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests


@dataclass
class UiServer:
    db: Path
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    url: str = ""  # with the token
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ENGRAM_", "MUNINN_")) and k not in ("DISPLAY", "WAYLAND_DISPLAY")
        }
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_DATA_HOME=str(self.home / ".local/share"),
            ENGRAM_DB=str(self.db),
            **self.extra_env,
        )
        return env

    @property
    def base(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    @property
    def token(self) -> str:
        return self.url.split("token=", 1)[1]

    def start(self, *args: str, timeout: float = 30) -> UiServer:
        if "--port" not in args:
            args = (*args, "--port", "0")  # never a fixed port in tests
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engram", "ui", "--no-open", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True).start()
        threading.Thread(
            target=_pump, args=(self.proc.stderr, self.stderr_lines), daemon=True
        ).start()
        try:
            self.url = lines.get(timeout=timeout).strip()
        except queue.Empty:
            self.stop()
            raise AssertionError(
                f"engram ui printed no URL in {timeout:g} s: {''.join(self.stderr_lines)}"
            ) from None
        assert self.url.startswith("http://127.0.0.1:"), self.url
        return self

    def session(self) -> requests.Session:
        """A logged-in client (the token exchanged for the cookie)."""
        s = requests.Session()
        s.trust_env = False
        response = s.get(self.url, timeout=30)
        response.raise_for_status()
        return s

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def __enter__(self) -> UiServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _pump(stream: Any, sink: Any) -> None:
    for line in stream:
        if isinstance(sink, list):
            sink.append(line)
        else:
            sink.put(line)
