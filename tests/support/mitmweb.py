"""Run a real mitmweb on loopback for tests, benchmarks and `make demo`.

It binds the proxy and the web API to 127.0.0.1 on free ports, uses a fixed
web_password and a private confdir (its own CA, nothing from ~/.mitmproxy), optionally
loads engram's addon, and stops within a bounded time.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mitmweb_binary() -> str:
    here = Path(sys.executable).parent / "mitmweb"
    return str(here) if here.exists() else (shutil.which("mitmweb") or "mitmweb")


class Mitmweb:
    def __init__(
        self,
        *,
        addon: bool = True,
        password: str | None = None,
        client_token: str | None = None,
        extra: list[str] | None = None,
        confdir: Path | None = None,
        proxy_port: int | None = None,
        web_port: int | None = None,
    ) -> None:
        self.password = password or secrets.token_hex(12)
        # What clients send: the password itself, unless `password` is its argon2 hash.
        self.token = client_token or self.password
        self.addon = addon
        self.extra = extra or []
        self._tmp = tempfile.TemporaryDirectory(prefix="engram-mitm-")
        self.confdir = confdir or Path(self._tmp.name)
        self.proxy_port = proxy_port or free_port()
        self.web_port = web_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(self._tmp.name) / "mitmweb.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def command(self) -> list[str]:
        cmd = [
            mitmweb_binary(),
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            str(self.proxy_port),
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(self.web_port),
            "--no-web-open-browser",
            "--set",
            f"web_password={self.password}",
            "--set",
            f"confdir={self.confdir}",
            "--set",
            "termlog_verbosity=info",
        ]
        if self.addon:
            from engram.sources import addon

            cmd += ["-s", str(Path(addon.__file__).resolve())]
        return cmd + self.extra

    def start(self, timeout: float = 30.0) -> Mitmweb:
        env = {
            k: v
            for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
        }
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        session = requests.Session()
        session.trust_env = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mitmweb exited: {self.log.read_text(errors='replace')}")
            try:
                r = session.get(
                    self.url + "/flows",
                    timeout=1,
                    headers={"Authorization": f"Bearer {self.token}"},
                )
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("mitmweb did not come up in time")

    def flows(self) -> list[dict]:
        """The flows mitmweb holds (its /flows JSON)."""
        session = requests.Session()
        session.trust_env = False
        r = session.get(
            self.url + "/flows", timeout=10, headers={"Authorization": f"Bearer {self.token}"}
        )
        r.raise_for_status()
        return list(r.json())

    def clear(self) -> None:
        """Remove every flow (`POST /clear`): a mitmweb shared by several tests starts
        each of them empty, as a fresh one would (a start costs ~4 s of CPU)."""
        session = requests.Session()
        session.trust_env = False
        session.cookies.set("_mitmproxy_xsrf", "x")
        r = session.post(
            self.url + "/clear",
            timeout=10,
            headers={"Authorization": f"Bearer {self.token}", "X-XSRFToken": "x"},
        )
        r.raise_for_status()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def restart(self) -> None:
        """Stop and start on the same ports: all flows are lost, new ids, as in reality."""
        self.stop()
        self.start()

    def __enter__(self) -> Mitmweb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def proxies(self) -> dict[str, str]:
        return {"http": self.proxy_url, "https": self.proxy_url}
