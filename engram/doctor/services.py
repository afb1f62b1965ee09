"""Checks of the services engram talks to: mitmweb, the analyzer's API, MuninnDB. They
read (list models, read options, call status), never spend tokens or change anything."""

from __future__ import annotations

from engram.config import AnalyzerConfig, Config
from engram.doctor.check import Check, session


def check_mitmweb(cfg: Config) -> list[Check]:
    url = cfg.mitmproxy.url.rstrip("/")
    s = session()
    if cfg.mitmproxy.token:
        s.headers["Authorization"] = f"Bearer {cfg.mitmproxy.token}"
    try:
        response = s.get(url + "/options", timeout=3)
    except Exception:
        return [
            Check(
                "mitmweb",
                "reachable",
                "warn",
                f"nothing answers at {url}",
                'start it: mitmweb -s "$(engram addon-path)" --set web_password=... '
                "(or use `engram run` / `engram proxy` instead)",
                required=False,
            )
        ]
    if response.status_code in (401, 403):
        return [
            Check(
                "mitmweb",
                "token",
                "fail",
                f"{url} refused the token",
                "set ENGRAM_MITMWEB_TOKEN (or mitmproxy.token) to mitmweb's web_password",
            )
        ]
    try:
        options = response.json()
    except ValueError:
        return [
            Check(
                "mitmweb",
                "reachable",
                "fail",
                f"{url} is not mitmweb's web API",
                "mitmproxy.url must be mitmweb's web port (8081), not the proxy port",
            )
        ]
    out = [Check("mitmweb", "reachable and token", "ok", url)]
    stored = (options.get("store_streamed_bodies") or {}).get("value")
    out.append(
        Check(
            "mitmweb",
            "store_streamed_bodies",
            "ok" if stored else "warn",
            f"store_streamed_bodies = {stored}",
            "" if stored else 'load the addon: mitmweb -s "$(engram addon-path)"',
        )
    )
    addon = "engram_inject" in options
    out.append(
        Check(
            "mitmweb",
            "engram addon",
            "ok" if addon else "warn",
            "loaded" if addon else "not loaded (streams are buffered, no injection)",
            "" if addon else 'restart mitmweb with -s "$(engram addon-path)"',
        )
    )
    return out


def check_analyzer(cfg: Config) -> list[Check]:
    a = cfg.analyzer
    backend, why = a.backend, ""
    if backend == "auto":
        from engram.analyzer.choose import auto_choice

        backend, reason = auto_choice(a)
        why = f" (auto: {reason})"
    if backend in ("heuristic", "none"):
        return [Check("analyzer", "backend", "ok", f"{backend} (offline, no key needed){why}")]
    if backend in ("claude-code", "local"):
        return _check_offline_analyzer(a, backend, why)
    s = session()
    if backend == "anthropic":
        if not a.api_key:
            return [
                Check(
                    "analyzer",
                    "backend",
                    "fail",
                    "anthropic selected but no key",
                    "set ANTHROPIC_API_KEY or analyzer.api_key",
                )
            ]
        url = (a.base_url or "https://api.anthropic.com").rstrip("/") + "/v1/models"
        headers = {"x-api-key": a.api_key, "anthropic-version": "2023-06-01"}
    else:
        url = (a.openai_base_url or "https://api.openai.com/v1").rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {a.openai_api_key or 'none'}"}
    try:
        response = s.get(url, headers=headers, timeout=5)
    except Exception as exc:
        return [
            Check(
                "analyzer",
                backend,
                "fail",
                f"{url} unreachable: {type(exc).__name__}",
                "check the base URL and the network; capture continues meanwhile",
            )
        ]
    if response.status_code in (401, 403):
        return [
            Check(
                "analyzer", backend, "fail", f"{url} rejected the key", "fix the analyzer's API key"
            )
        ]
    ok = response.status_code < 400
    return [
        Check(
            "analyzer",
            backend,
            "ok" if ok else "warn",
            f"{url} answered {response.status_code} (no tokens spent)",
        )
    ]


def check_muninn(cfg: Config) -> list[Check]:
    m = cfg.muninn
    if not getattr(m, "enabled", False):
        return [
            Check("muninn", "mirror", "skip", "disabled (muninn.enabled = false)", required=False)
        ]
    from engram.mirror.client import MuninnAuthError
    from engram.mirror.vault import make_client, project_vault

    base = m.url.rstrip("/")
    try:
        health = session().get(base + "/health", timeout=3)
        ok = health.status_code == 200
    except Exception:
        ok = False
    out = [
        Check(
            "muninn",
            "health",
            "ok" if ok else "fail",
            f"{base}/health {'answers' if ok else 'does not answer'}",
            ""
            if ok
            else "start MuninnDB (`muninn start`) or fix muninn.url; "
            "changes wait in the outbox meanwhile",
        )
    ]
    if not ok:
        return out
    try:
        make_client(m).ping(timeout=3)
        out.append(Check("muninn", "token", "ok", "MCP calls are authorized"))
    except MuninnAuthError:
        out.append(
            Check(
                "muninn",
                "token",
                "fail",
                "MuninnDB refused the token",
                "set MUNINN_TOKEN or put it in muninn.token_file (0600)",
            )
        )
    except Exception as exc:
        out.append(Check("muninn", "token", "fail", str(exc), "see `engram mirror status`"))
    from engram.paths import project_root

    vault = m.vault or project_vault(str(project_root()))
    out.append(
        Check(
            "muninn",
            "vaults",
            "ok",
            f"this project -> {vault}; global -> {m.global_vault}",
            required=False,
        )
    )
    return out


def _check_offline_analyzer(a: AnalyzerConfig, backend: str, why: str) -> list[Check]:
    """claude-code needs the `claude` command (it uses the user's own login); local needs
    the model file and the `local` extra. Neither is run here: a check spends nothing."""
    import importlib.util
    import shutil

    if backend == "claude-code":
        path = shutil.which(a.claude_command)
        if path is None:
            return [
                Check(
                    "analyzer",
                    backend,
                    "fail",
                    f"`{a.claude_command}` is not on PATH",
                    "install Claude Code (npm i -g @anthropic-ai/claude-code) and log in, or "
                    "set analyzer.claude_command",
                )
            ]
        detail = f"{path}, model {a.claude_model}; uses your Claude login{why}"
        return [Check("analyzer", backend, "ok", detail)]
    from engram.analyzer import models

    model = models.default_model(a.local_model)
    if not importlib.util.find_spec("xllamacpp"):
        problem, fix = "the local extra is not installed", "pip install 'engram-tap[local]'"
    elif model is None or not model.is_file():
        problem = f"no model file ({model or models.models_dir()})"
        fix = "`engram models fetch` installs one (or set analyzer.local_model)"
    else:
        return [Check("analyzer", backend, "ok", f"{model.name} ({model.parent}){why}")]
    return [Check("analyzer", backend, "fail", problem, fix)]
