"""Which memory texts must wait for a person before any agent sees them.

A memory is injected into every later request of its scope, so a memory is a standing
instruction to future agents. Text an attacker controls (tool output, a fetched web
page, a file in a cloned repository, an issue comment) reaches the analyzer as data;
if the analyzer is steered into writing it down, it would be replayed to agents for
weeks. `screen` looks for the shapes such a payload must take to do harm, and the
analyzer's guard (engram/analyzer/policy.py) stores a memory that shows one with
status `review`: kept, never injected or mirrored, until `engram review accept`.

Rules (each finding names its rule):

- `network-pipeline`: code fetched from the network and run in one line: `curl … | sh`,
  `wget -O- … | bash`, `bash <(curl …)`, `sh -c "$(curl …)"`, `eval "$(curl …)"`,
  PowerShell `irm … | iex` / `iex (iwr …)` / `DownloadString`, download-then-run chains
  (`curl -o x … && sh x`, `chmod +x` of a download); and the reverse direction: secrets
  or the environment sent to the network (`env | curl -d @-`, `-d @~/.ssh/id_rsa`,
  `tar … ~/.ssh | curl -T -`), and reverse shells (`/dev/tcp/`, `nc -e`). Official
  installers piped to `sh` (pnpm, rustup, uv) match too, on purpose: a domain allowlist
  cannot tell `raw.githubusercontent.com/nvm-sh/…` from `raw.githubusercontent.com/
  attacker/…`. A user who stated such a procedure accepts it once.
- `credential-url`: a URL with a password (`scheme://user:password@host`), or a long
  token as its user name. Placeholders (`${VAR}`, `<token>`, `****`) are not
  credentials, nor are well-known local defaults (`postgres:postgres@localhost`,
  `guest:guest@rabbitmq`) on loopback or single-label (compose service) hosts.
- `model-instruction`: text addressed to the model rather than a fact about the work:
  "ignore (all) previous instructions", "from now on you are…", "you must always…",
  "do not tell the user", "takes precedence over all other instructions", "note to AI
  agents", "reveal your system prompt", and memory that runs engram's own commands.
- `hidden-text`: invisible or direction-changing characters (zero-width, bidi
  overrides, Unicode tag characters) that hide text from the person reviewing it.

Measured on tests/data/quarantine/memories.jsonl (`bench/guard.py`); the numbers are
in docs/privacy.md. What no pattern can see: steering by meaning alone (a look-alike
package name, a mirror URL, "disable the secret scanner"). Those are what the scope
and per-conversation rules bound instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NETWORK_PIPELINE = "network-pipeline"
CREDENTIAL_URL = "credential-url"
MODEL_INSTRUCTION = "model-instruction"
HIDDEN_TEXT = "hidden-text"


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    excerpt: str  # what matched, at most 80 characters

    def __str__(self) -> str:
        return f"{self.rule}: {self.excerpt}"


_I = re.IGNORECASE
_FETCH = r"(?:curl|wget|fetch|aria2c|iwr|irm|invoke-webrequest|invoke-restmethod)"
_SHELL = (
    r"(?:sh|bash|zsh|dash|ksh|fish|python[0-9.]*|perl|ruby|node|php|pwsh|powershell"
    r"|iex|invoke-expression|source)"
)
_SUDO = r"(?:sudo(?:\s+-\S+)*\s+)?(?:env\s+(?:\S+=\S*\s+)*)?"
_SEGMENT = r"[^\n|;&]*"  # one command of a pipeline
# Prose says "curl | sh"; a command has a URL or a host.
_URLISH = r"(?:\w+://|\b[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b)"
_SENSITIVE = (
    r"(?:~|\$HOME|/home/[^/\s]+|/root)?/?\.?(?:ssh|aws/credentials|aws|netrc|npmrc|pypirc"
    r"|git-credentials|kube/config|docker/config\.json|gnupg|bash_history|zsh_history)"
    r"|\.env\b|id_rsa|id_ed25519|id_ecdsa|/etc/passwd|/etc/shadow"
)

_PIPELINE_RULES = [
    # fetch URL ... | [tee ... |] [sudo] shell
    re.compile(
        rf"\b{_FETCH}\b{_SEGMENT}?{_URLISH}{_SEGMENT}(?:\|{_SEGMENT})*?\|\s*{_SUDO}{_SHELL}(?![\w.-])",
        _I,
    ),
    # shell <(fetch ...), source <(fetch ...), . <(fetch ...)
    re.compile(rf"(?:\b{_SHELL}|(?<![\w.])\.)\s+<\(\s*{_FETCH}\b", _I),
    # shell -c "$(fetch ...)", eval "$(fetch ...)", `fetch ...` in a command substitution
    re.compile(rf"\b(?:{_SHELL}|eval|exec)\b[^\n]{{0,20}}[\"']?(?:\$\(|`)\s*{_FETCH}\b", _I),
    # PowerShell: iex (iwr ...), iex (New-Object Net.WebClient).DownloadString(...)
    re.compile(
        r"\b(?:iex|invoke-expression)\b\s*\(?\s*(?:\(?\s*new-object\b|iwr\b|irm\b"
        r"|invoke-webrequest\b|invoke-restmethod\b)",
        _I,
    ),
    re.compile(r"\.DownloadString\s*\(", _I),
    # secrets or the whole environment sent to the network
    re.compile(
        rf"(?:\b(?:env|printenv|set)\b|\bcat\s+\S*(?:{_SENSITIVE})|\btar\b[^\n|]*(?:{_SENSITIVE}))"
        rf"[^\n]*\|\s*(?:base64\s*\|\s*)?(?:curl|wget|nc|ncat|netcat|socat)\b",
        _I,
    ),
    re.compile(
        rf"\b(?:curl|wget)\b[^\n]*(?:-d|--data(?:-binary|-raw|-urlencode)?|-F|--form|-T"
        rf"|--upload-file|--post-file)\s*=?\s*['\"]?[\w-]*=?@?\S*(?:{_SENSITIVE})",
        _I,
    ),
    # reverse shells
    re.compile(r"/dev/(?:tcp|udp)/\S+", _I),
    re.compile(r"\b(?:nc|ncat|netcat)\b[^\n|]*\s-[ec]\s", _I),
    re.compile(r"\|\s*(?:nc|ncat|netcat)\s+\S+\s+\d+", _I),
    re.compile(r"\bsocat\b[^\n]*\bexec:", _I),
]

_URL_USERINFO = re.compile(
    r"\b[a-z][a-z0-9+.-]{1,15}://([^\s/@:]+)(?::([^\s/@]*))?@([^\s/:?#]+)", _I
)
_PLACEHOLDER = re.compile(
    r"^(?:\$\{?\w+\}?|<[^>]*>|\{\{[^}]*\}\}|\*+|x{3,}|\.{3}|%\w+%?|\[[^\]]*\]|your[-_]?\w*)$", _I
)
_LOCAL_DEFAULTS = frozenset(
    "postgres password pass secret test example changeme admin root guest dev local "
    "mysql user app docker redis minioadmin rabbitmq mongo".split()
)
_LOCAL_HOST = re.compile(r"^(?:localhost|127(?:\.\d+){3}|\[?::1\]?|0\.0\.0\.0|[a-z][\w-]*)$", _I)

_INSTRUCTION_RULES = [
    re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+)?"
        r"(?:of\s+)?(?:the\s+|your\s+)?(?:previous|prior|above|earlier|preceding|original"
        r"|system|safety|developer|other|all|your)\s+"
        r"(?:instructions?|prompts?|rules|guidelines|guardrails|directives|constraints)\b",
        _I,
    ),
    re.compile(r"\b(?:ignore|disregard|forget)\s+(?:your|the)\s+system\s+prompt\b", _I),
    re.compile(r"\bignore\s+(?:the\s+)?user'?s?\s+instructions\b", _I),
    re.compile(r"\b(?:forget|ignore|disregard)\s+your\s+(?:guidelines|instructions|rules)\b", _I),
    re.compile(r"\byou\s+are\s+now\b", _I),
    re.compile(r"\bfrom\s+now\s+on,?\s+you\s+(?:are|will|must|should|can)\b", _I),
    re.compile(r"\byou\s+(?:must|shall|have\s+to)\s+(?:always|never)\b", _I),
    re.compile(r"\b(?:new|updated)\s+(?:system\s+)?instructions?\s*:", _I),
    re.compile(r"\bsystem\s+override\b", _I),
    re.compile(r"\b(?:developer|god|dan|jailbreak|maintenance)\s+mode\b[^\n]{0,40}\byou\b", _I),
    re.compile(
        r"\b(?:reveal|print|show|repeat|output|leak|disclose)\s+(?:your|the)\s+"
        r"(?:system\s+prompt|instructions)\b",
        _I,
    ),
    re.compile(
        r"\b(?:do\s+not|don't|never)\s+(?:tell|inform|notify|alert|warn)\s+the\s+user"
        r"(?![-\w])(?:\s+(?:about|of)\s+(?:this|these|it|that)\b|\s+that\s+you\b|\s*[.,;:!]|\s*$)",
        _I,
    ),
    re.compile(
        r"\b(?:do\s+not|don't|never)\s+(?:mention|reveal|disclose|show)\s+"
        r"(?:this|these(?:\s+instructions)?|it)\s+to\s+the\s+user\b",
        _I,
    ),
    re.compile(r"\bwithout\s+(?:telling|informing|notifying|alerting)\s+the\s+user\b", _I),
    re.compile(r"\bhide\s+(?:this|it|that)\s+from\s+the\s+user\b", _I),
    re.compile(
        r"\b(?:takes?\s+precedence\s+over|overrides?|supersedes?)\s+(?:all|any|every|other"
        r"|previous|prior|your)\s+(?:other\s+)?(?:instructions?|rules|prompts?)\b",
        _I,
    ),
    re.compile(r"\bregardless\s+of\s+what\s+the\s+user\b", _I),
    re.compile(r"\beven\s+if\s+the\s+user\s+(?:says|asks|objects|tells|refuses)\b", _I),
    re.compile(r"\bthe\s+user\s+has\s+(?:authori[sz]ed|allowed|approved)\s+you\b", _I),
    re.compile(
        r"\b(?:attention|note\s+to|dear|hey|to)\s*:?\s*(?:all\s+)?(?:(?:ai|llm)\s+)?"
        r"(?:ai|llms?|assistants?|agents?|models?|claude|chatgpt|gpt|gemini|copilot)\b\s*[:,]",
        _I,
    ),
    re.compile(
        r"\b(?:ai|llm)\s+(?:agents?|assistants?|models?)\s+(?:reading|processing|seeing)\s+this\b",
        _I,
    ),
    re.compile(r"\bif\s+you\s+are\s+an?\s+(?:ai|llm|language\s+model|assistant|agent)\b", _I),
    re.compile(r"^\s*(?:assistant|system)\s*:", _I),
    re.compile(r"\bengram\s+(?:add|forget|supersede|edit|restore|review|import)\b", _I),
]

# Zero-width and bidi controls, and the Unicode tag block (invisible "ASCII smuggling").
_HIDDEN = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)


def _excerpt(text: str, start: int, end: int) -> str:
    piece = " ".join(text[start:end].split())
    return piece if len(piece) <= 80 else piece[:79] + "…"


_DOWNLOAD = re.compile(
    r"\b(?:curl|wget)\b[^\n;&|]*?\s(?:-o|-O|--output(?:-document)?|>)\s*=?\s*['\"]?([^\s'\"]+)",
    _I,
)
_RUN = re.compile(
    rf"(?:&&|;|\|\|)\s*{_SUDO}(?:{_SHELL}\s+|chmod\s+[0-7ugoa+x]+\s+|\.\s+|exec\s+)?['\"]?(\S+?)['\"]?(?=\s|$|;|&)",
    _I,
)


def _download_then_run(text: str) -> re.Match[str] | None:
    """`curl -o x URL && sh x`, `wget -O /tmp/a URL; chmod +x /tmp/a; /tmp/a`: the file
    that was downloaded is what runs next (`wget -O data.csv …; python load.py` is not)."""
    for m in _DOWNLOAD.finditer(text):
        name = m.group(1).rsplit("/", 1)[-1]
        if not name or name == "-":
            continue
        for run in _RUN.finditer(text, m.end()):
            if run.group(1).rsplit("/", 1)[-1] == name:
                return m
    return None


def _credential_urls(text: str) -> list[Finding]:
    found = []
    for m in _URL_USERINFO.finditer(text):
        user, password, host = m.group(1), m.group(2), m.group(3)
        if password is None:
            # A user name alone is not a credential, unless it is a long token.
            if len(user) >= 20 and re.search(r"\d", user) and re.search(r"[A-Za-z]", user):
                found.append(Finding(CREDENTIAL_URL, _excerpt(text, m.start(), m.end())))
            continue
        if not password or _PLACEHOLDER.match(password) or _PLACEHOLDER.match(user):
            continue
        local = _LOCAL_HOST.match(host) is not None
        if local and (password.lower() in _LOCAL_DEFAULTS or password == user):
            continue
        found.append(Finding(CREDENTIAL_URL, _excerpt(text, m.start(), m.end())))
    return found


def screen(text: str) -> list[Finding]:
    """Why `text` must be reviewed before any agent sees it (empty: it need not be)."""
    findings: list[Finding] = []
    hidden = _HIDDEN.search(text)
    if hidden:
        findings.append(Finding(HIDDEN_TEXT, f"U+{ord(hidden.group(0)):04X} at {hidden.start()}"))
        text = _HIDDEN.sub("", text)  # a hidden character must not break the rules below
    for pattern in _PIPELINE_RULES:
        m = pattern.search(text)
        if m:
            findings.append(Finding(NETWORK_PIPELINE, _excerpt(text, m.start(), m.end())))
            break
    else:
        m = _download_then_run(text)
        if m:
            findings.append(Finding(NETWORK_PIPELINE, _excerpt(text, m.start(), m.end())))
    findings.extend(_credential_urls(text)[:1])
    for pattern in _INSTRUCTION_RULES:
        m = pattern.search(text)
        if m:
            findings.append(Finding(MODEL_INSTRUCTION, _excerpt(text, m.start(), m.end())))
            break
    return findings
