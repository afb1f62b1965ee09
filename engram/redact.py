"""Secret redaction: nothing engram stores or sends may contain a credential.

Captured agent traffic is full of secrets (keys pasted into prompts, `.env` files read by
tools, curl commands in logs), so every text goes through `redact` before it is stored or
shown to a model. Each secret becomes `[REDACTED:<type>]`, which keeps the text readable
("the agent used an OpenAI key here") without the value.

Speed matters because this runs on every request body, so all rules live in ONE regex.
Each rule starts with a literal "lead" character (for `sk-...` the `k`, the `s` before it
being checked by a lookbehind and added back through `back`), and rules sharing a lead sit
under it: the top level is `k(?:...)|c(?:...)|...`. Python's `re` then scans with a
first-character bitmap and only enters the matcher at those characters. Leads are chosen
among the rarer characters (`k` for token/api_key, `J` for `eyJ`, `z` for Authorization).

Precision matters as much as recall (a redacted commit SHA or `max_tokens` damages the
memories distilled from the traffic), so context rules (assignments, headers, URLs) are
confirmed in Python: placeholders, code references, type names, paths and numbers are kept.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Finding:
    """A redacted span of the original text. It never holds the secret, so it can be logged."""

    type: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Rule:
    type: str
    leads: str  # literal first characters of the match; case variants are listed explicitly
    body: str  # the regex after the lead character
    back: int = 0  # characters before the lead that belong to the secret (checked by lookbehind)
    check: str = "token"  # which Python confirmation runs on a candidate, see _judge
    min_len: int = 6
    strict: bool = False  # `token`, `auth`: overloaded words, so the value must look random


# A character that glues a token to its left neighbour: `ask-...` or `/AKIA...` is no key.
_B = r"[A-Za-z0-9_+/\-]"
_ALPHA = "[A-Za-z]"


def _edge(before: str = "", glue: str = _B) -> str:
    """Lookbehinds for after the lead: `before` precedes it, and no `glue` character precedes
    that, unless it ends a `\\n` escape (JSON text: `...\\nsk-ant-...`) or a `://` (a token as
    the user of a URL: `https://ghp_...@github.com`)."""
    after = f"(?<={before}.)" if before else ""
    return f"{after}(?:(?<!{glue}{before}.)|(?<=\\\\[nrt]{before}.)|(?<=://{before}.))"


_I = "(?i:{})".format
_Q = r"""\\{0,3}["'`]"""  # a quote, possibly escaped once or twice (JSON inside JSON)
_KEYEND = rf"(?:{_Q})?"
# `k=v`, `k: v`, `k := v`, `k => v`, `k: Type = v`, `<k>v</k>`, `--k v` (ws, checked later).
# Atomic: once the key is read one way it stays so, or a second pass over the redacted text
# could read it another way (`K: T = [REDACTED]` as `K: <value>`) and redaction not be idempotent.
_TYPE = r"[A-Za-z_][\w.]*(?:\[[\w.,| \[\]]{0,40}\])?"  # str, Optional[str], t.Dict[str, int]
_SEP = (
    rf"[ \t]*(?>:[ \t]*{_TYPE}(?:[ \t]*\|[ \t]*{_TYPE}){{0,3}}[ \t]*=(?![=>])|:=|=>|=(?!=)"
    r"|:(?![:/])|>(?=[^<\s]{1,512}</)|(?P<ws>[ \t]+(?=[^\s:=])))[ \t]*"
)
# A quoted value (string prefixes b"", r'' allowed) or a bare one; the bare one must not be
# followed by `(`/`[` (a call or subscript: `pwd = os.getcwd()`, `token = tokens[0]`).
_VAL = (
    rf"(?:[bBrRuUfF]{{0,2}}(?P<q>{_Q})(?P<v>[^\s\"'`\\]{{1,512}})(?P=q)"
    r"|(?P<w>[^\s\"'`\\,;&<>(){}\[\]]{1,512}+)(?![(\[{]))"
)
_ASSIGN = _KEYEND + _SEP + _VAL
_KEY_PREFIXES = ("api", "access", "private", "secret", "signing", "encryption", "master", "app")
_KEY_WORD = "(?:{})".format(  # `...key` anchored at its k: api_key, apiKey, X-API-KEY ...
    "|".join(f"(?<={_I(p + s + 'k')})" for p in _KEY_PREFIXES for s in ("", "[_.-]"))
) + _I("ey")
_B64 = r"[A-Za-z0-9+/]"
_TOKEN68 = r"[A-Za-z0-9\-._~+/]{8,}+=*(?![(\[])"  # RFC 7235 token68, not a call

# fmt: off
_RULES: tuple[_Rule, ...] = (
    # A whole block: the body runs possessively over base64, whitespace, (escaped) newlines and
    # header lines (`Proc-Type: 4,ENCRYPTED`) up to END. A block cut off before END (a `head`
    # of a key file) still loses its base64 lines; the prose after them is kept.
    _Rule("private-key", "B", r"(?<=-----B)EGIN[A-Z0-9 ]{0,24}PRIVATE KEY(?: BLOCK)?-----"
          r"(?:(?P<v>(?:[A-Za-z0-9+/=\s,:]|\\{1,2}[nrt]|-(?!-)){0,20000}+)"
          r"-----END[A-Z0-9 ]{0,24}PRIVATE KEY(?: BLOCK)?-----"
          r"|(?P<w>(?:(?:\s|\\{1,2}[nrt])+(?:[A-Za-z0-9+/=]{16,}"
          r"|(?:Proc-Type|DEK-Info|Comment|Version):[^\n\\]*))++))", back=5, check="pem"),
    _Rule("anthropic", "k", _edge("s") + r"-ant-[A-Za-z0-9_-]{24,}", back=1),
    _Rule("openai", "k", _edge("s") + r"-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}"
          r"|[A-Za-z0-9]{32,})", back=1),
    _Rule("stripe", "k", _edge("[sr]") + r"_(?:live|test)_[A-Za-z0-9]{16,}", back=1),
    _Rule("stripe", "w", _edge() + r"hsec_[A-Za-z0-9+/=]{24,}"),
    _Rule("aws-access-key", "A", _edge() + r"(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    _Rule("google", "A", _edge() + r"Iza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    _Rule("google", "G", _edge() + r"OCSPX-[A-Za-z0-9_-]{24,}"),
    _Rule("google", "y", _edge() + r"a29\.[A-Za-z0-9_-]{30,}"),
    _Rule("twilio", "A", _edge() + r"C[0-9a-f]{32}(?![0-9A-Za-z])"),
    _Rule("twilio", "S", _edge() + r"K[0-9a-f]{32}(?![0-9A-Za-z])"),
    _Rule("twilio", "wW", r"(?<=[tT].)" + _I("ilio") + r"[A-Za-z_-]{0,20}?" + _I("token|secret|key")
          + _KEYEND + r"[ \t]*[:=][ \t]*(?:" + _Q + r")?(?P<v>[A-Za-z0-9]{32})(?![A-Za-z0-9])"),
    _Rule("azure", "A", _edge("", _ALPHA) + r"ccountKey=(?P<v>" + _B64 + r"{20,}={0,2})"),
    _Rule("azure", "S", _edge("", _ALPHA) + r"haredAccessKey=(?P<v>" + _B64 + r"{20,}={0,2})"),
    _Rule("azure", "g", r"(?<=[?&]si.)=(?P<v>[A-Za-z0-9%+/]{30,}={0,2})"),
    _Rule("github", "g", _edge() + r"(?:h[pousr]_[A-Za-z0-9]{36,}|ithub_pat_[A-Za-z0-9_]{30,})"),
    _Rule("gitlab", "g", _edge() + r"l(?:pat|dt|rt|ptt|soat|ft|imt|cbt|oas)-[A-Za-z0-9_-]{20,}"
          r"(?:\.[A-Za-z0-9_-]+)*"),
    _Rule("slack", "x", _edge() + r"(?:ox[abposre](?:\.xox[a-z])?-\d[A-Za-z0-9-]{8,}"
          r"|app-\d-[A-Za-z0-9-]{8,})"),
    _Rule("slack-webhook", ":", r"//hooks\.slack\.com/(?:services|workflows|triggers)/"
          r"(?P<v>[A-Za-z0-9_/-]{16,})"),
    _Rule("url-credentials", ":", r"(?<=[A-Za-z0-9+.\-]:)//[^\s:/?#@\"'`\\<>\[\]]{0,128}:"
          r"(?P<v>[^\s/?\"'`\\<>]{1,256})@(?=[A-Za-z0-9\[])", check="url"),
    _Rule("jwt", "J", _edge("ey") + r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
          back=2),
    _Rule("npm", "p", _edge("n") + r"m_[A-Za-z0-9]{36,}", back=1),
    _Rule("huggingface", "f", _edge("h") + r"_[A-Za-z0-9]{30,}", back=1),
    _Rule("sendgrid", "S", _edge() + r"G\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"),
    _Rule("bearer", "zZ", r"(?<=" + _I("authori") + r".)" + _I("ation") + _KEYEND
          + r"[ \t]*[:=][ \t]*(?:" + _Q + r")?(?>(?P<s>[A-Za-z]+)[ \t]+)?(?P<v>" + _TOKEN68 + ")",
          check="header"),
    _Rule("bearer", "Bb", _edge() + _I("earer") + r"[ \t]+(?P<v>" + _TOKEN68 + ")", check="bearer"),
    _Rule("basic-auth", "Bb", _edge() + _I("asic") + r"[ \t]+(?P<v>" + _B64 + r"{6,}={0,2})"
          r"(?![A-Za-z0-9+/=])", check="basic"),
    # Assignments. An AWS secret key first: its `secret` is also the generic rule's anchor.
    _Rule("aws-secret-key", "cC", r"(?<=" + _I("se") + r".)" + _I("ret") + r"(?:[_.-]?"
          + _I("access") + r")?[_.-]?" + _I("key") + _KEYEND + r"[ \t]*[:=][ \t]*"
          r"[bBrRuUfF]{0,2}(?:" + _Q + r")?(?P<v>" + _B64 + r"{40})(?![A-Za-z0-9+/=])",
          check="aws"),
    _Rule("secret-assignment", "cC", r"(?:(?<=" + _I("se") + r".)" + _I("ret") + r"(?:[_.-]?"
          + _I("access") + r")?(?:[_.-]?" + _I("key") + r")?(?:[_.-]?" + _I("base") + r")?|"
          + _I("redentials?") + ")" + _ASSIGN, check="assign"),
    _Rule("secret-assignment", "pP", r"(?:" + _I("ass(?:word|wd|phrase)") + "|"
          + _edge("", _ALPHA) + _I("ass|wd") + ")" + _ASSIGN, check="assign"),
    _Rule("secret-assignment", "kK", _KEY_WORD + _ASSIGN, check="assign"),
    _Rule("secret-assignment", "kK", r"(?<=" + _I("to") + r".)" + _I("en") + _ASSIGN,
          check="assign", strict=True),
    _Rule("secret-assignment", "uU", _edge("[aA]", _ALPHA) + _I("th") + _ASSIGN,
          check="assign", min_len=12, strict=True),
)
# fmt: on

_CONTEXT_CHECKS = frozenset({"url", "header", "bearer", "assign", "aws"})
_AUTH_HEADERS = frozenset({"authorization", "proxy-authorization", "http_authorization"})
REDACTION_TYPES: frozenset[str] = frozenset(r.type for r in _RULES)


def _compile() -> tuple[re.Pattern[str], dict[int, tuple[_Rule, dict[str, int]]]]:
    """Build the single combined pattern, grouping rule bodies under their lead characters.

    Every rule ends with an empty marker group `r_<i>`: it closes last, so `lastindex` names
    the rule that matched. Group names get a `_<rule>_<lead>` suffix to stay unique."""
    by_lead: dict[str, list[str]] = {}
    for i, rule in enumerate(_RULES):
        for j, lead in enumerate(rule.leads):
            body = re.sub(r"\(\?P([<=])(\w+)", rf"(?P\1\2_{i}_{j}", rule.body)
            by_lead.setdefault(lead, []).append(f"(?:{body})(?P<r_{i}_{j}>)")
    alts = (re.escape(c) + "(?:" + "|".join(bodies) + ")" for c, bodies in by_lead.items())
    pattern = re.compile("|".join(alts))
    groups: dict[tuple[int, int], dict[str, int]] = {}
    for name, index in pattern.groupindex.items():
        kind, si, sj = name.split("_")
        groups.setdefault((int(si), int(sj)), {})[kind] = index
    return pattern, {g.pop("r"): (_RULES[i], g) for (i, _), g in groups.items()}


_RX, _MARKERS = _compile()

# Placeholders: documentation values, template variables and masks are not secrets.
# ${X} $X %s {{x}} <k> @X@ [MASK] #{x}, a colour #fff, a YAML tag !vault
_PH_START = re.compile(r"[$%{<@\[]|#\{|#[0-9a-fA-F]{3,8}$|![A-Za-z]+$")
_PH_ANYWHERE = re.compile(
    r"\{[\w.]*\}|\{\{|<[\w -]+>|\.\.\.|…|\*\*\*|x{5}|X{5}|(?i:example|placeholder|changeme|redacted"
    r"|(?:your|my)[-_ ]?(?:own[-_ ]?)?(?:secret|private|access|token|pass)|(?:your[-_ ]?|my[-_ ])"
    r"(?:api|auth|app|key))"
)
_PH_WORDS = frozenset("your here todo tbd fixme dummy fake mock sample xxx replace".split())
_STOPWORDS = frozenset(
    """password passwd passphrase pass pwd secret secrets token tokens key apikey api_key auth
    credential credentials none null nil true false undefined required optional default empty
    hidden string str bytes text int number boolean bool object any secretstr env bearer basic
    oauth oauth2 jwt test testing include omit same-origin tiger""".split()
)  # `tiger`: the scott/tiger demo login of SQLAlchemy and Oracle docs
_SECRET_WORD = re.compile(r"(?i)pass|pwd|secret|token|key|credential|auth")
# Names are made of words (snake, kebab, dotted, camel); random secrets mix case and digits.
_WORD = r"(?:[a-z]+|[A-Z]+|[A-Z][a-z]+)(?:[A-Z][a-z]+)*[A-Z]?"
_NAME_RE = re.compile(rf"_*{_WORD}\d*(?:[_.\-]+{_WORD}\d*)*")  # GITHUB_TOKEN, accessToken
_CODE_REF_RE = re.compile(rf"_*{_WORD}(?:[_.\-]+{_WORD})*")  # self._password, str, re-exchanging
_DOTTED_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")  # ed25519.Ed25519PrivateKey
_TYPE_NAME_RE = re.compile(r"(?:[A-Z][a-z]+){3}")  # PKCS7PrivateKeyTypes, InvalidCredentialsResult
_CALL_RE = re.compile(r"[\w.]+\(.*\)")
_PATH_RE = re.compile(r"(?:~|\.{1,2})?/[\w.\-/]*")


def is_placeholder(value: str) -> bool:
    """Whether `value` is a stand-in (`<your-key>`, `${API_KEY}`, `xxxx`, docs examples)."""
    if not value or _PH_START.match(value) or _PH_ANYWHERE.search(value):
        return True
    if len(set(value.lower())) < 4:  # xxxxxx, ******, 000000: no entropy, no secret
        return True
    return any(w in _PH_WORDS for w in re.split(r"[^a-z0-9]+", value.lower()))


def _plausible(
    value: str, *, quoted: bool, shouty_key: bool, min_len: int = 6, strict: bool = False
) -> bool:
    """Whether the value of a secret-named key is a literal secret, not code or a label."""
    if (
        len(value) < min_len
        or is_placeholder(value)
        or value.lower() in _STOPWORDS
        or "://" in value  # a URL: credentials in URLs have their own rule
        or value[0] == "-"  # the next `--flag`
        or (not quoted and "*" in value)  # ABNF `token = 1*tchar`
        or _CALL_RE.fullmatch(value)  # `get_token()` in a code span
        or value.replace(".", "").replace("-", "").isdigit()  # ports, counts, versions
        or (_PATH_RE.fullmatch(value) and not re.search("[+=]", value))  # PWD=/home/me
    ):
        return False
    if (
        strict
        and not any(c.isdigit() for c in value)
        and (len(value) < 20 or _NAME_RE.fullmatch(value))
    ):
        return False  # a lexer/NLP/sentinel "token" (`"upgrades"`, `Token.Name`), no credential
    if (
        _NAME_RE.fullmatch(value)
        and _SECRET_WORD.search(value)
        and re.search(r"\W|_|[a-z][A-Z]", value)
    ):
        return False  # a name, not a value: GITHUB_TOKEN, "access_token", self.password
    if not quoted and (
        _CODE_REF_RE.fullmatch(value)
        or _TYPE_NAME_RE.search(value)
        or (not shouty_key and _DOTTED_RE.fullmatch(value))
    ):
        # `password=password`, `token: str`, prose: code. Only KEY=value env style keeps words.
        return shouty_key and not _TYPE_NAME_RE.search(value)
    return True


def _key_at(text: str, pos: int) -> str:
    """The whole key name around `pos` (`DB_PASSWORD` around the `P`, `--api-key` around `k`)."""
    start = end = pos
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-."):
        if text[start - 1] in "nrt" and text[start - 2 : start - 1] == "\\":
            break  # the `n` of a `\\n` escape is no part of the name
        start -= 1
    while end < len(text) and (text[end].isalnum() or text[end] in "_-."):
        end += 1
    return text[start:end]


def _basic_ok(value: str) -> bool:
    """A Basic credential decodes to `user:password`; prose like `Basic authentication` won't."""
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    _, colon, password = raw.partition(":")
    return bool(colon) and raw.isprintable() and not is_placeholder(password)


def _judge(m: re.Match[str], rule: _Rule, groups: dict[str, int]) -> tuple[str, int, int] | None:
    """Confirm a candidate; returns (type, start, end) of the span to redact, or None."""
    text, check, kind = m.string, rule.check, rule.type
    key = next((g for g in ("v", "w") if g in groups and m.start(groups[g]) >= 0), None)
    start, end = m.span(groups[key]) if key else (m.start() - rule.back, m.end())
    value = text[start:end]
    if check == "pem":  # the body only confirms the block (a bare header in code has none)
        has_body = re.search(r"[A-Za-z0-9+/]{16}", value) is not None
        return (kind, m.start() - rule.back, m.end()) if has_body else None
    if check in ("assign", "aws"):
        name = _key_at(text, m.start())
        if "ws" in groups and m.start(groups["ws"]) >= 0 and not name.startswith("-"):
            return None  # `password hunter2` only counts as a flag: `--password hunter2`
        if check == "aws" and re.search("(?i)aws|access", name):
            return None if is_placeholder(value) else (kind, start, end)
        kind = "secret-assignment"
        if key == "w":  # a bare value stops before sentence punctuation
            value = value.rstrip(".:")
            end = start + len(value)
        shouty, quoted = name.isupper(), key == "v"
        if not _plausible(
            value, quoted=quoted, shouty_key=shouty, min_len=rule.min_len, strict=rule.strict
        ):
            return None
    elif is_placeholder(value) or value.lower() in _STOPWORDS:
        return None
    elif check == "header":
        name = _key_at(text, m.start()).lower().lstrip("-")
        scheme = (m.group(groups["s"]) or "").lower()
        if name not in _AUTH_HEADERS or _CODE_REF_RE.fullmatch(value) or scheme == "digest":
            return None  # `expected_authorization=...`, `authorization = authorization.split()`
        if scheme == "basic":
            return ("basic-auth", start, end) if _basic_ok(value) else None
    elif check == "bearer" and (len(value) < 16 or not any(c.isdigit() for c in value)):
        return None  # outside a header, `Bearer` needs a token-like value
    elif check == "basic" and not _basic_ok(value):
        return None
    if check in _CONTEXT_CHECKS:
        kind = _refine(value, kind)
    return kind, start, end


def _refine(value: str, default: str) -> str:
    """A value that is itself a recognisable token (`api_key="sk-..."`) gets that token's type."""
    for kind, start, end in _scan(value):
        if start == 0 and end == len(value):
            return kind
    return default


def _scan(text: str, pos: int = 0, endpos: int | None = None) -> list[tuple[str, int, int]]:
    """All confirmed secret spans in `text[pos:endpos]`, left to right, non-overlapping."""
    found: list[tuple[str, int, int]] = []
    search = _RX.search
    endpos = len(text) if endpos is None else endpos
    last_end = pos
    while (m := search(text, pos, endpos)) is not None:
        rule, groups = _MARKERS[m.lastindex or 0]
        hit = _judge(m, rule, groups)
        if hit is None:
            pos = m.start() + 1  # a rejected candidate must not hide a secret inside it
            continue
        kind, start, end = hit
        if start > m.start() + 1:  # what led to the value (a key, a URL's user) is scanned too
            found += _scan(text, m.start() + 1, start)
        found.append((kind, max(start, last_end), end))
        pos = last_end = max(m.end(), end)
    return found


def _render(text: str, spans: list[tuple[str, int, int]]) -> tuple[str, list[int]]:
    """`text` with the spans replaced by markers, and where each marker starts in the output."""
    parts: list[str] = []
    starts: list[int] = []
    pos = size = 0
    for kind, start, end in spans:
        marker = f"[REDACTED:{kind}]"
        parts += (text[pos:start], marker)
        starts.append(size + start - pos)
        size += start - pos + len(marker)
        pos = end
    parts.append(text[pos:])
    return "".join(parts), starts


def _to_original(p: int, spans: list[tuple[str, int, int]], starts: list[int], end: bool) -> int:
    """Map a position in the rendered text back to the original (a marker maps to its span)."""
    i = bisect.bisect_right(starts, p - end) - 1
    if i < 0:
        return p
    kind, o_start, o_end = spans[i]
    r_end = starts[i] + len(kind) + 11  # len("[REDACTED:]") == 11
    if p < r_end + end:
        return o_end if end else o_start
    return p - r_end + o_end


def redact_with_findings(text: str) -> tuple[str, list[Finding]]:
    """`text` with every secret replaced by `[REDACTED:<type>]`, and what was replaced.

    Redacting can change how neighbouring text reads (a key whose type annotation held a
    token), so the output is scanned again until it is clean: the result is a fixpoint, which
    makes `redact` idempotent by construction. Text without secrets is scanned once."""
    spans = _scan(text)
    out = text
    for _ in range(16):
        if not spans:
            break
        out, starts = _render(text, spans)
        extra = _scan(out)
        if not extra:
            break
        moved = [(k, _to_original(a, spans, starts, False), _to_original(b, spans, starts, True))
                 for k, a, b in extra]  # fmt: skip
        merged: list[tuple[str, int, int]] = []
        for kind, start, end in sorted(spans + moved, key=lambda s: (s[1], -s[2])):
            if merged and start < merged[-1][2]:
                merged[-1] = (merged[-1][0], merged[-1][1], max(end, merged[-1][2]))
            else:
                merged.append((kind, start, end))
        spans = merged
    return out, [Finding(kind, start, end) for kind, start, end in spans]


def find_secrets(text: str) -> list[Finding]:
    """Where the secrets in `text` are (spans in `text`) and of which type."""
    return redact_with_findings(text)[1]


def redact(text: str) -> str:
    """`text` with every secret replaced by `[REDACTED:<type>]`; idempotent."""
    return redact_with_findings(text)[0]


# The same key names as the text rules; `token` and `auth` are overloaded, hence "strict".
_SECRET_KEY_RE = re.compile(
    r"(?i)(?:.*[^a-z])?(?:pass|pwd|(?P<auth>auth))|.*(?:(?P<token>token)|password|passwd"
    r"|passphrase|credentials?|secret(?:[_.-]?access)?(?:[_.-]?key)?(?:[_.-]?base)?"
    rf"|(?:{'|'.join(_KEY_PREFIXES)}|account|sharedaccess)[_.-]?key)"
)


def is_secret_key(name: str) -> bool:
    """Whether a key or field name says its value is a secret (`DB_PASSWORD`, `apiKey`)."""
    return _SECRET_KEY_RE.fullmatch(name) is not None


def _json_secret(key: str, value: str) -> bool:
    """Whether `value`, under the JSON key `key`, is a secret by the name of its key alone."""
    m = _SECRET_KEY_RE.fullmatch(key)
    if m is None:
        return False
    min_len = 12 if m["auth"] else 6
    strict = bool(m["auth"] or m["token"])
    return _plausible(value, quoted=True, shouty_key=True, min_len=min_len, strict=strict)


def redact_json(value: Any) -> Any:
    """A redacted copy of a decoded JSON value: every string (keys too) goes through `redact`,
    and a string under a secret-named key is replaced whole unless it is clearly no secret."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            new = redact_json(v)
            if isinstance(k, str) and isinstance(v, str) and new == v and _json_secret(k, v):
                new = "[REDACTED:secret-assignment]"
            out[redact(k) if isinstance(k, str) else k] = new
        return out
    if isinstance(value, list | tuple):
        return type(value)(redact_json(v) for v in value)
    return value
