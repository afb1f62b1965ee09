"""Confirming a candidate: the regex finds where a secret may be, these decide what it is.

Each rule names a check; `judge` returns the spans to redact as (type, start, end), or None
to reject the candidate. Context decides as much as the value: a 40-character random string
is a secret after `aws_secret_access_key` and a commit after `commit`; `postgres` is a
password nobody needs to hide; `-p` is a password only for mysql and its kin; a `data:` value
is a secret only in a `kind: Secret`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from engram.redact.keys import (
    Candidate,
    Groups,
    Hit,
    assignment,
    key_span,
    line_before,
    span_of,
    text_of,
    typed_password,
)
from engram.redact.rules import GLUE, Rule
from engram.redact.values import (
    STOPWORDS,
    is_code_reference,
    is_fake_token,
    is_placeholder,
    is_wordy,
    looks_random,
)

_GLUE = re.compile(GLUE)
# Formats specific enough to be recognised as a URL path segment (`/Accounts/AC.../`).
_PATH_TOKENS = frozenset({"twilio"})


def bounded(text: str, start: int) -> bool:
    """No glue character before `start`, unless it ends a `\\n` escape or a `://`."""
    if start <= 0 or not _GLUE.match(text[start - 1]):
        return True
    return text[start - 2 : start] in ("\\n", "\\r", "\\t") or text[start - 3 : start] == "://"


def credential_ok(user: str, password: str) -> bool:
    """A password next to its user: not empty, not a placeholder, not the user's name again
    (`postgres:postgres`, `admin:admin`, `guest:guest` are the defaults of local services)."""
    return (
        bool(password)
        and "[REDACTED:" not in f"{user}:{password}"  # a marker's own colon is no credential
        and not is_placeholder(password)
        and password.lower() not in STOPWORDS
        and password.lower() != user.lower()
    )


# -- vendor formats --------------------------------------------------------------------------


def _token(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    start = m.start() - rule.back
    value = m.string[start : m.end()]
    in_path = rule.type in _PATH_TOKENS and m.string[start - 1 : start] == "/"
    if not (in_path or bounded(m.string, start)) or is_fake_token(value):
        return None
    if rule.check == "rand" and (is_wordy(value) or not any(c.isdigit() for c in value)):
        return None  # a generic prefix (`re_`, `fw_`): an identifier is no key
    return [(rule.type, start, m.end())]


# Prefixes of live/test-mode keys that are published on purpose (Stripe's and Omise's
# publishable keys go into web pages) and words that make `x_test_...` an identifier.
_PUBLISHABLE = frozenset({"pk", "pkey", "pub", "public", "publishable", "client"})
_VENDORS = {"rzp": "razorpay"}
_MODE_PREFIX = re.compile(r"[a-z][a-z0-9]{1,9}\Z")


def _mode_key(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """`<vendor>_<mode>_<random>`: the vendor prefix (2-10 lower-case characters) is read back
    from the lead; the part after the mode must look generated (`test_live_reload_assets` and
    `run_test_suite_20250115` are names)."""
    text = m.string
    prefix = _MODE_PREFIX.search(text, max(0, m.start() - 10), m.start())
    if prefix is None or prefix[0] in _PUBLISHABLE or not bounded(text, prefix.start()):
        return None
    rest = text[m.start() + 1 : m.end()].partition("_")[2]
    last = rest.rsplit("_", 1)[-1] if len(rest) > 40 else rest  # `apikey_<26>_<22>_<3>`
    if not any(c.isdigit() for c in rest) or not looks_random(rest.replace("_", ""), 14):
        return None
    if is_fake_token(rest) or is_wordy(last):
        return None
    return [(_VENDORS.get(prefix[0], rule.type), prefix.start(), m.end())]


def _telegram(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """`<bot id>:AA<33>`, also inside its API URL: `https://api.telegram.org/bot<token>/`."""
    start = m.start() - rule.back
    while start > 0 and m.string[start - 1].isdigit() and m.start() - start < 10:
        start -= 1
    in_url = m.string[start - 4 : start] == "/bot"
    if not (in_url or bounded(m.string, start)) or is_fake_token(m.string[m.start() : m.end()]):
        return None
    return [(rule.type, start, m.end())]


def _twilio(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """An account SID, and the auth token written right after it (`AC...:token`)."""
    hits = _token(m, rule, groups)
    tok = span_of(m, groups, "tok")
    if hits is None or tok is None:
        return hits
    sid_end = tok[0] - len(text_of(m, groups, "sep"))
    return [(rule.type, hits[0][1], sid_end), (rule.type, *tok)]


def _path(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """A webhook URL: the host stays, the path (the secret) goes."""
    span = span_of(m, groups, "v")
    if span is None or is_fake_token(m.string[span[0] : span[1]]):
        return None
    return [(rule.type, *span)]


# -- blocks ----------------------------------------------------------------------------------

_BODY = re.compile(r"[A-Za-z0-9+/]{16}")
_PPK_PRIVATE = re.compile(r"Private-Lines|Private-MAC")


def _pem(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """The body only confirms the block (a bare header in code has none)."""
    span = span_of(m, groups, "v", "w")
    if span is None or _BODY.search(m.string, *span) is None:
        return None
    return [(rule.type, m.start() - rule.back, m.end())]


def _ppk(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """A PuTTY key file, whole, once its private part is in sight."""
    found = _PPK_PRIVATE.search(m.string, m.start(), m.end())
    return [(rule.type, m.start(), m.end())] if found else None


def _b64pem(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """`LS0tLS1CRUdJTi...` is base64 of `-----BEGIN`: a secret if a private key follows
    (kubeconfig `client-key-data`, a `tls.key`), not a certificate."""
    start = m.start() - rule.back
    head = m.string[start : min(m.end(), start + 80)]
    try:
        raw = base64.b64decode(head[: len(head) - len(head) % 4], validate=True)
    except (binascii.Error, ValueError):
        return None
    if not bounded(m.string, start) or b"PRIVATE KEY" not in raw:
        return None
    return [(rule.type, start, m.end())]


_K8S_YAML = re.compile(r"(?m)^([ \t]*)(?:data|stringData):[ \t]*\r?\n((?:\1[ \t]+\S[^\n]*\n?)+)")
_K8S_ENTRY = re.compile(r"(?m)^([ \t]+)[\"']?[\w.\-/]+[\"']?:[ \t]*(\S[^\n]*?)[ \t]*$")
_K8S_JSON = re.compile(r"\"(?:data|stringData)\"[ \t]*:[ \t]*\{([^{}]{0,20000})\}")
_K8S_JSON_ENTRY = re.compile(r"\"[\w.\-/]+\"[ \t]*:[ \t]*\"([^\"\\]+)\"")


def k8s_document(text: str, pos: int) -> tuple[int, int]:
    """The YAML document (between `---` lines) around `pos`, at most 8,000 characters each way."""
    lo = max(text.rfind("\n---", max(0, pos - 8000), pos), pos - 8000, 0)
    hi = text.find("\n---", pos, pos + 8000)
    return lo, min(len(text), pos + 8000) if hi < 0 else hi


def _k8s(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """Every value under `data:`/`stringData:` of the YAML document or JSON object that
    declares `kind: Secret` (kubectl prints `data` before `kind`)."""
    text = m.string
    lo, hi = k8s_document(text, m.start())
    doc = text[lo:hi]
    hits: list[Hit] = []
    for block in _K8S_YAML.finditer(doc):
        indent = None
        for entry in _K8S_ENTRY.finditer(block[2]):
            if indent is None:
                indent = entry[1]
            elif entry[1] != indent:
                break  # the map under data: ends where the indentation changes
            value = entry[2].strip("\"'")
            if value in ("|", ">", "|-", ">-") or not value or is_placeholder(value):
                continue
            start = lo + block.start(2) + entry.start(2) + entry[2].find(value)
            hits.append((rule.type, start, start + len(value)))
    for block in _K8S_JSON.finditer(doc):
        for entry in _K8S_JSON_ENTRY.finditer(block[1]):
            if not is_placeholder(entry[1]):
                start = lo + block.start(1) + entry.start(1)
                hits.append((rule.type, start, start + len(entry[1])))
    return hits or None


# -- headers and URLs ------------------------------------------------------------------------

_AUTH_HEADERS = frozenset({"authorization", "proxy-authorization", "http_authorization"})


def _basic_ok(value: str) -> bool:
    """A Basic credential decodes to `user:password`; prose like `Basic authentication` won't."""
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    user, colon, password = raw.partition(":")
    return bool(colon) and raw.isprintable() and credential_ok(user, password)


def _scheme_value(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """`Authorization: <scheme> <value>`, `Bearer <token>`, `Basic <base64>`, a URL's
    `user:password@`."""
    span = span_of(m, groups, "v")
    if span is None:
        return None
    value = m.string[span[0] : span[1]]
    if is_placeholder(value) or value.lower() in STOPWORDS:
        return None
    if rule.check == "url":
        user = m.string[m.start() + 2 : span[0] - 1]
        return [(rule.type, *span)] if credential_ok(user, value) else None
    if rule.check == "bearer":
        ok = bounded(m.string, m.start()) and looks_random(value, 16)
        return [(rule.type, *span)] if ok else None
    if rule.check == "basic":
        return [(rule.type, *span)] if _basic_ok(value) else None
    name = key_span(m.string, m.start())[0].lower().lstrip("-")  # an Authorization header
    scheme = text_of(m, groups, "s").lower()
    if name not in _AUTH_HEADERS or scheme == "digest":
        return None
    if is_code_reference(value, shouty_key=False) or (not scheme and is_wordy(value)):
        return None  # `authorization = authorization.split()`, `: AuthorizationPolicy`
    if scheme == "basic":
        return [("basic-auth", *span)] if _basic_ok(value) else None
    return [("bearer", *span)]


_DSN_STOP = frozenset(" \t\r\n\"'`=(,;<>")


def _dsn(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """Go's MySQL DSN has no scheme: `user:pass@tcp(host:3306)/db`."""
    text, at = m.string, m.start()
    i = at
    while i > 0 and at - i < 300 and text[i - 1] not in _DSN_STOP:
        i -= 1
    user, colon, password = text[i:at].partition(":")
    if not colon or "/" in user or not credential_ok(user, password):
        return None
    return [(rule.type, at - len(password), at)]


# -- command lines ---------------------------------------------------------------------------

_COMMAND_BREAK = re.compile(r"\|\||&&|[|;`]|\$\(")
_USER_FLAG = re.compile(r"(?:-u[ \t]*|--user[ \t=]+)[\"']?([^\s\"']+)")
_CURL = re.compile(r"\bcurl\b")
_TWILIO_SID = re.compile(r"AC[0-9a-f]{32}")
_MYSQL = re.compile(r"\b(?:mysql\w*|mariadb[\w-]*|mycli)\b")
_FLAG_COMMANDS = {
    "p": re.compile(
        r"\b(?:(?:docker|podman|nerdctl|buildah|skopeo|helm|oras|crane)\b.*\blogin|sshpass"
        r"|twine|mongo(?:sh)?|mongodump|mongorestore|mongoimport|mongoexport)\b"
    ),
    "a": re.compile(r"\bredis-cli\b"),
    "w": re.compile(r"\bldap(?:search|add|modify|delete|passwd|whoami|compare)\b"),
    "P": re.compile(r"\b(?:sqlcmd|bcp|osql)\b"),
    "-body": re.compile(r"\bgh\s+secret\s+set\b"),
    "t": re.compile(r"\bcodecov(?:cli|-cli)?\b"),  # the Codecov uploader's upload token
}


def _segment(text: str, pos: int) -> str:
    """The command a flag at `pos` belongs to: its line, after the last `|`, `;`, `&&`."""
    return _COMMAND_BREAK.split(line_before(text, pos, 300))[-1]


def _user_flag(segment: str) -> str:
    found = _USER_FLAG.search(segment)
    return found[1] if found else ""


def _command_line(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """`curl -u user:pass`, `mysql -pSECRET`, `docker login -p X`, `gh secret set --body X`,
    `IDENTIFIED BY 'x'`: what a flag means depends on the command."""
    span = span_of(m, groups, "v", "v2", "w")
    if span is None:
        return None
    value = m.string[span[0] : span[1]]
    if rule.check == "sql":
        return [(rule.type, *span)] if credential_ok("", value) else None
    segment = _segment(m.string, m.start())
    if rule.check == "curl":
        user, _, password = value.rstrip(".,;:)").partition(":")
        if not _CURL.search(segment) or not credential_ok(user, password):
            return None
        kind = "twilio" if _TWILIO_SID.fullmatch(user) else rule.type
        start = span[0] + len(user) + 1
        return [(kind, start, start + len(password))]
    if rule.check == "mysql":
        if "`" in value or value[0] in "/),.":
            return None  # prose about the flag: "a `mysql -p`/`curl -u` argument"
        command = _MYSQL
    else:
        command = _FLAG_COMMANDS[text_of(m, groups, "f")]
    if not command.search(segment) or not credential_ok(_user_flag(segment), value):
        return None
    return [(rule.type, *span)]


_LOGIN = re.compile(
    r"(?i)\b(?:log(?:ged)?[ -]?in|sign[ -]?in|credentials?|creds|account|ssh)\b[^\n]{0,60}?"
    r"([\w.@+-]{2,64})[ \t]+\Z"
)


def _login(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """`login is admin / S3cr3t!x`: a user and a password written as `user / password` in a
    sentence about logging in. The password must look chosen (not `the usual one`)."""
    span = span_of(m, groups, "v")
    found = _LOGIN.search(line_before(m.string, m.start(), 200))
    if span is None or found is None:
        return None
    value = m.string[span[0] : span[1]].rstrip(".,;:)")
    if not (credential_ok(found[1], value) and typed_password(value)):
        return None
    return [(rule.type, span[0], span[0] + len(value))]


_JUDGES: dict[str, Callable[[Candidate, Rule, Groups], list[Hit] | None]] = {
    "token": _token,
    "rand": _token,
    "telegram": _telegram,
    "twilio": _twilio,
    "path": _path,
    "pem": _pem,
    "ppk": _ppk,
    "b64pem": _b64pem,
    "k8s": _k8s,
    "header": _scheme_value,
    "bearer": _scheme_value,
    "basic": _scheme_value,
    "url": _scheme_value,
    "dsn": _dsn,
    "curl": _command_line,
    "mysql": _command_line,
    "cliflag": _command_line,
    "sql": _command_line,
    "assign": lambda m, rule, groups: assignment(m, groups),
    "mode": _mode_key,
    "login": _login,
}
# Checks whose match runs from a key to its value: the pass goes on from the value, which may
# be a token that the same pass knows (`API_KEY=sk-...`, `--user 'api:key-...'`).
CONTEXT_CHECKS = frozenset(
    {"assign", "header", "bearer", "basic", "url", "curl", "mysql", "cliflag", "sql", "login"}
)


def judge(m: Candidate, rule: Rule, groups: Groups) -> list[Hit] | None:
    """Confirm a candidate: the spans to redact, or None to reject it."""
    return _JUDGES[rule.check](m, rule, groups)
