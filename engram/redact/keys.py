"""Assignments: a value is a secret because its key says so, and the value agrees.

`DB_PASSWORD=...`, `"apiKey": "..."`, `--token ...`, `password ...` in netrc, `- name:
API_TOKEN` / `value: ...` in a container spec. The key is read whole (the regex anchors on
its last word), classified, and the value judged for that class:

- `human` keys (password, passwd, pwd, pass, passphrase) hold what a person chose: any
  literal counts unless it is a placeholder, a default login, code or a type;
- `machine` keys (secret, credentials, api_key, private_key, ...) and the overloaded
  `token`/`auth` hold generated values: the value must look random (`values.looks_random`);
- `SOME_KEY=` in env style, with no telling word before KEY, needs a random value with a
  digit, as only the key's shape speaks for it.
"""

from __future__ import annotations

import functools
import re
from typing import Protocol

from engram.redact.values import (
    STOPWORDS,
    is_annotation,
    is_code_reference,
    is_placeholder,
    looks_random,
    reads_as_words,
)

Hit = tuple[str, int, int]  # (type, start, end) in the original text
Groups = dict[str, int]  # a rule's group names (without their `_<i>` suffix) -> group index


class Candidate(Protocol):
    """A regex match, read from the original text (the scanned copy may differ in blanks)."""

    @property
    def string(self) -> str: ...

    def start(self, group: int = 0, /) -> int: ...

    def end(self, group: int = 0, /) -> int: ...

    def span(self, group: int = 0, /) -> tuple[int, int]: ...

    @property
    def regs(self) -> tuple[tuple[int, int], ...]: ...  # every group's span, (-1, -1) if none


def span_of(m: Candidate, groups: Groups, *names: str) -> tuple[int, int] | None:
    """The span of the first of the named groups that took part in the match."""
    regs = m.regs
    for name in names:
        if name in groups and (span := regs[groups[name]])[0] >= 0:
            return span
    return None


def text_of(m: Candidate, groups: Groups, name: str) -> str:
    """The text of a named group, "" if it took no part in the match."""
    span = span_of(m, groups, name)
    return m.string[span[0] : span[1]] if span else ""


def line_before(text: str, pos: int, limit: int = 1000) -> str:
    """The text from the start of `pos`'s line (a newline or a `\\n` escape) to `pos`."""
    lo = max(0, pos - limit)
    escaped = text.rfind("\\n", lo, pos)
    start = max(text.rfind("\n", lo, pos) + 1, escaped + 2 if escaped >= 0 else 0, lo)
    return text[start:pos]


# -- keys ------------------------------------------------------------------------------------

_KEY_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_NEUTRAL_SUFFIX = frozenset("value values b64 base64 base hex str string raw plain literal".split())
_NOT_PASS = frozenset("bypass compass surpass encompass overpass underpass trespass".split())
_KEY_QUALIFIERS = frozenset(
    """api access secret private signing sign encryption encrypt master app application account
    client license licence auth service webhook hmac session admin server shared consumer
    subscription storage deploy write ingest management root sas primary secondary integration
    installation bot x""".split()
)
# Words before the secret word that make it something else: a public key, a pagination or
# lexer token, a database key. (`reset_token`, `invite_token` stay secrets.)
_NEGATIONS = frozenset(
    """public publishable pub anon search next page pagination continuation sync cursor csrf
    xsrf idempotency request trace max min num count total input output prompt completion
    cache cached stop eos bos pad unk mask sep cls special lexer parser sort partition
    foreign routing dedup dedupe object bucket kms gpg pgp ssh fingerprint sentinel""".split()
)
_PROSE_KEY = re.compile(r"([A-Za-z]+) $")
_KEY_TAIL = re.compile(r"[A-Za-z0-9_.\-]*")


def key_span(text: str, pos: int) -> tuple[str, int]:
    """The whole key name around `pos` (`DB_PASSWORD` around its `P`, `--api-key` around `k`)
    and where it starts; `API key` in prose."""
    start = pos
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-."):
        if text[start - 1] in "nrt" and text[start - 2 : start - 1] == "\\":
            break  # the `n` of a `\\n` escape is no part of the name
        start -= 1
    end = _KEY_TAIL.match(text, pos).end()  # type: ignore[union-attr]  # `*` always matches
    key = text[start:end]
    if key.lower() in ("key", "token") and text[start - 1 : start] == " ":
        before = _PROSE_KEY.search(text, max(0, start - 20), start)
        if before and before[1].lower() in _KEY_QUALIFIERS:
            key = before[1] + "_" + key  # "API key", "secret key", "access token"
        elif before and key.lower() == "key" and before[1].lower() not in _NOT_A_VENDOR:
            key = before[1] + " " + key  # "Cohere key", "my mistral key": a vendor's key
    return key, start


# Words before a prose `key` that say it is no service's key.
_NOT_A_VENDOR = frozenset(
    """the a an this that my your our their his her its new old same one any each every which
    what whose some no primary foreign sort partition hash cache lookup map dict row range
    composite unique index api""".split()
)


@functools.lru_cache(maxsize=4096)
def key_words(key: str) -> tuple[str, ...]:
    """`AWS_SECRET_ACCESS_KEY` -> aws secret access key; `apiKeyValue` -> api key."""
    words = [w.lower() for w in _KEY_WORDS.findall(key)]
    while len(words) > 1 and words[-1] in _NEUTRAL_SUFFIX:
        words.pop()
    return tuple(words)


@functools.lru_cache(maxsize=4096)  # keys repeat: `token`, `password`, `API_KEY`
def classify_key(key: str) -> str | None:
    """What a key says its value is: `human` (a password someone chose), `machine` (a
    generated secret or API key), `token`/`auth` (overloaded words: the value must look
    generated), `shouty` (`SOME_KEY`), or None (`password_hint`, `token_count`, `public_key`)."""
    words = key_words(key)
    if not words:
        return None
    last, before = words[-1], words[:-1]
    if any(w in _NEGATIONS for w in before):
        return None
    if last in ("password", "passwd", "pwd", "pw", "pass", "passphrase") or (
        last.endswith(("password", "passwd", "pass", "pwd", "passwort")) and last not in _NOT_PASS
    ):
        return "human" if last not in ("cwd", "oldpwd") else None
    if last in ("secret", "credential", "credentials", "creds"):
        return "machine"
    if last.endswith("token") and last != "tokens":
        return "token"
    if last == "auth":
        return "auth"
    if last.endswith("key") and last != "key":
        return "machine" if last[:-3] in _KEY_QUALIFIERS else None  # apikey, secretkey
    if last == "pat" and key.isupper() and before:
        return "machine"  # GITHUB_PAT, ADO_PAT: a personal access token
    if last == "key" and before:
        if before[-1] in _KEY_QUALIFIERS:
            return "machine"
        if " " in key:
            return "vendor"  # "Cohere key X" in prose (key_span): only a generated value
        return "shouty" if key.isupper() and "_" in key else None  # SENDGRID_KEY=...
    return None


def is_secret_key(name: str) -> bool:
    """Whether a key or field name says its value is a secret (`DB_PASSWORD`, `apiKey`)."""
    return classify_key(name) is not None


# -- values ----------------------------------------------------------------------------------

_NUMBER = re.compile(r"[0-9][0-9.,:_\-]*")
_PATH = re.compile(r"(?:~|\.{1,2}|[A-Za-z]:)?[/\\][\w.\-/\\]*")
_CALL = re.compile(r"[\w.]+\(.*\)")
_ABNF = re.compile(r"[0-9]*\*")
_NAME = re.compile(r"[A-Za-z_][\w.]*")
_SECRET_WORD = re.compile(r"(?i)pass|pwd|secret|token|key|cred|auth")
_COMPOUND = re.compile(r"[._]|[a-z][A-Z]")
_MIN_LEN = {"human": 6, "machine": 10, "token": 12, "auth": 12, "shouty": 16, "vendor": 24}
_MIN_LEN["bare"] = 24
_HEX_KEY = re.compile(r"[0-9a-f]{32,40}|[0-9A-F]{32,40}")
_SYMBOL = re.compile(r"[!@#$^*?~]")
_LETTER_DIGIT_LETTER = re.compile(r"[A-Za-z][0-9]+[A-Za-z]")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MIXED = re.compile(r"(?=[^a-z]*[a-z])(?=[^A-Z]*[A-Z])(?=[^0-9]*[0-9])[A-Za-z0-9]+")


def typed_password(value: str) -> bool:
    """Whether a value looks like a password a person typed, not a word or a name: a symbol
    between letters and digits (`Kestrel@Bay#19`, `Lotus824^`), digits between letters
    (`hunter2hunter2`, `W1nt3r`), or random. `Winter2024`, `argon2id`, `sha256`, `1Password`
    and emails do not count: they are also words, versions and names."""
    if len(value) < 7 or "/" in value or ":" in value or _EMAIL.fullmatch(value):
        return False
    if not (any(c.isalpha() for c in value) and any(c.isdigit() for c in value)):
        return False
    if _SYMBOL.search(value.strip("!?")) or (_SYMBOL.search(value[-1]) and len(value) >= 9):
        return True
    if _LETTER_DIGIT_LETTER.search(value) and value.isalnum():
        return sum(c.isdigit() for c in value) >= 2 or not reads_as_words(value)
    return looks_random(value, 8)


def _password_like(value: str) -> bool:
    """For prose (`the password is ...`): words are not passwords, mixtures are."""
    core = value.rstrip(".,;:")
    if len(core) < 7:
        return False
    if looks_random(core, 8):
        return True
    return any(c.isdigit() for c in core) and any(c.isalpha() for c in core)


def plausible(value: str, cls: str, *, quoted: bool, sep: str, key: str) -> bool:
    """Whether the value of a secret-named key is a literal secret, not code or a label."""
    chosen = cls in ("machine", "token") and typed_password(value)
    if (
        len(value) < (8 if chosen else _MIN_LEN[cls])
        or is_placeholder(value)
        or value.lower() in STOPWORDS
        or "://" in value  # a URL: credentials in URLs have their own rule
        or value[0] == "-"  # the next `--flag`
        or (not quoted and _ABNF.match(value))  # ABNF `token = 1*tchar`, `***`
        or _CALL.fullmatch(value)  # `get_token()` in a code span
        or _NUMBER.fullmatch(value)  # ports, counts, versions, dates
        or (_PATH.fullmatch(value) and "+" not in value and "=" not in value)  # PWD=/home/me
        or value.lower() in (key.lower(), key.lower().lstrip("_-"))  # password=password
    ):
        return False
    if not quoted:
        if sep == ":" and is_annotation(value):
            return False  # `password: SecretStr`, `token: str`
        if is_code_reference(value, shouty_key=key.isupper() and "_" in key):
            return False  # `settings.api_key`, `GITHUB_TOKEN`, `hashedPassword`
    elif (
        _NAME.fullmatch(value)
        and _SECRET_WORD.search(value)
        and reads_as_words(value)
        and _COMPOUND.search(value)
    ):
        return False  # "access_token", "OPENAI_API_KEY": a name, not a value
    if cls == "human":
        return sep not in ("is", "ws") or _password_like(value)
    if cls == "shouty" and not any(c.isdigit() for c in value):
        return False  # only the key's shape speaks for it: the value must look generated
    if cls == "vendor" and not _MIXED.fullmatch(value):
        return False  # "Cohere key": hex after a word and `key` is as often a digest
    if cls == "bare" and not (_MIXED.fullmatch(value) or _HEX_KEY.fullmatch(value)):
        return False  # a bare `key` holds many things: only an API key's shapes count
    if chosen and sep not in ("is", "ws"):
        return True  # `JWT_SECRET=Lotus824^`: a person chose it, under a generated-value key
    return looks_random(value, _MIN_LEN[cls])


_CONTINUES = re.compile(r"[;&,][\w.\-]+=")


def _trim_bare(value: str) -> str:
    """A bare value ends where a connection string or query continues (`;Encrypt=`,
    `&expires_in=`) and before sentence punctuation."""
    m = _CONTINUES.search(value)
    return (value[: m.start()] if m else value).rstrip(";,.:")


_SET_COMMAND = re.compile(
    r"(?:^|[\s;|&(])(?:set|setx|set\s+-[a-zA-Z]+|ENV|export|configure\s+set|config\s+set"
    r"|config:set|secrets?\s+set|add-authtoken|snyk)\s+\S*$"
)
# netrc: `machine <host> [login <user>] [account <a>] password <x>`, on one line or several.
_NETRC = re.compile(
    r"(?:^|\s)(?:machine[ \t]+\S+|default)(?:\s+(?:login|account|port)[ \t]+\S+)*\s+$"
)
_PAIR = re.compile(r"[A-Za-z_][\w.\-]*=")


def _whitespace_sep(text: str, key_start: int, key: str, value: str) -> str | None:
    """`KEY value` counts as an assignment for a flag (`--password x`), a `set`-like command
    (`aws configure set aws_secret_access_key x`, `ENV X y`) and netrc (`machine h login u
    password x`): then it reads like `=`. Elsewhere (prose: `use API key 3f9a...`) only a
    value that is unmistakably generated counts ("ws"), and never another `k=v` pair."""
    if _PAIR.match(value) or value.endswith(":"):
        return None
    if key.startswith("-") or _SET_COMMAND.search(line_before(text, key_start, 300)):
        return "="
    if key.lower() == "password" and _NETRC.search(text, max(0, key_start - 300), key_start):
        return "="
    if _UUID.fullmatch(value):
        return None  # `Token 3f2a... revoked`, `session 3f2a... started`: ids are named so
    if classify_key(key) == "human" and typed_password(value.rstrip(".,;:")):
        return "is"  # "ssh in as deploy, password W1nt3r#k", "pw jasper4jasper4"
    return "ws" if looks_random(value, 16) and any(c.isdigit() for c in value) else None


_DIGEST_WORDS = re.compile(r"(?i)sha|md5|hash|digest|checksum|etag|commit|cache|fingerprint")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


_SEPS = ("ann", "xml", "attr", "pair", "env", "is", "ws")
_ENV_NAME = re.compile(r"(?:^|[\s{,])-?[ \t]*[\"']?name[\"']?[ \t]*:[ \t]*[\"']?$")
_CALL_OPEN = re.compile(r"\(\\{0,3}[\"']$")
_AWS_SECRET = re.compile(r"[A-Za-z0-9+/]{40}")


def assignment(m: Candidate, groups: Groups) -> list[Hit] | None:
    """Confirm a key = value candidate; the value's span, typed by the key where it tells."""
    text = m.string
    key, key_start = key_span(text, m.start())
    cls = classify_key(key)
    if cls is None and key.lower() == "key":
        cls = "bare"  # `key = ...`, "key 3f9a... works": an API key's shape, not a digest
    quoted_span = span_of(m, groups, "v", "v2", "v3")
    span = quoted_span or span_of(m, groups, "w")
    if cls is None or span is None:
        return None
    start, end = span
    sep = next((s for s in _SEPS if span_of(m, groups, s)), "")
    if not sep:  # `:` (YAML, or an annotation), or `=`, `:=`, `=>` (assignments)
        sep = "=" if "=" in text[m.start() : start] else ":"
    if sep == ":" and text[key_start - 1 : key_start] == ":":
        return None  # a field of a colon-separated name: arn:aws:secretsmanager:...:secret:x
    value = text[start:end]
    if quoted_span is None:
        value = _trim_bare(value)
        end = start + len(value)
    if not value or "[REDACTED:" in value:
        return None
    key_quoted = span_of(m, groups, "kq") is not None
    if sep in ("attr", "pair"):
        if not (key_quoted and quoted_span):
            return None  # only key="ApiSecret" value="..." and ("X-Api-Key", "...")
        if sep == "pair" and not _CALL_OPEN.search(text, max(0, key_start - 5), key_start):
            return None  # a call's arguments, not a list of names: ["password", "otp"]
        if sep == "pair" and cls != "human" and not looks_random(value, 16):
            return None
    elif sep == "env":
        if not _ENV_NAME.search(line_before(text, key_start, 200)):
            return None  # `- name: API_TOKEN` then `value: ...`: a container's env list
        sep = "="
    elif sep == "ws":
        if key_quoted:
            return None  # `"... signing key" kid=...`: the end of a quoted string
        if quoted_span is not None:
            sep = "="  # `WITH PASSWORD 'x'` (SQL), `token "x"`: a quoted literal follows
        elif not (sep := _whitespace_sep(text, m.start(), key, value) or ""):
            return None
    if not plausible(value, cls, quoted=quoted_span is not None, sep=sep, key=key):
        return None
    if cls == "bare" and _DIGEST_WORDS.search(line_before(text, key_start, 200)):
        return None  # `cache key`, `sha1 key`, an ETag: a digest named `key`
    words = key_words(key)
    kind = "secret-assignment"
    if "secret" in words and ("aws" in words or "access" in words):
        kind = "aws-secret-key" if _AWS_SECRET.fullmatch(value) else kind
    elif "twilio" in words:
        kind = "twilio"
    elif words[0] in ("account", "shared") and words[-1] == "key":
        kind = "azure"  # AccountKey=, SharedAccessKey= in connection strings
    return [(kind, start, end)]
