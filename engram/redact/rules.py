"""The rules, and the seven patterns they compile into.

Speed matters because every captured text goes through the redactor. Python's `re` scans
for a pattern's first character quickly and enters the matcher only there, so every rule
starts with a *lead*, one literal character of it, and rules are grouped by lead into seven
passes (see `_PASSES` for what each costs). Leads are chosen among characters that are rare
in code and prose: a vendor token leads with the separator inside its prefix (`ghp_` on `_`,
`pypi-` on `-`, `hvs.` on `.`) or with an upper-case first letter (`AKIA`), a key word with
its own first letter (`password`, `secret`, `token`, `key`, `auth`, `bearer`). The rest of a
prefix, and the lead itself where a group shares several, is checked by a lookbehind after
the first literal, which `re` rejects without entering the alternative. The frequent leads
(`_`, `-`, `.`) first require 16 token characters ahead, which identifiers and prose
rarely have.

A rule's `check` names the Python confirmation in `checks.py`; the regex only finds candidates.
Vendor formats come from the vendors' documentation (gitleaks' rule list served as the
checklist of which services exist); the expressions are our own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Rule:
    type: str
    lead: str  # the literal character the combined pattern dispatches on
    body: str  # the regex after the lead
    back: int = 0  # characters before the lead that belong to the match (checked by lookbehind)
    check: str = "token"  # which confirmation runs on a candidate, see checks.py


# A character that glues a token to its left neighbour: `ask-...` or `/AKIA...` is no key.
GLUE = r"[A-Za-z0-9_+/\-]"
_TOK = "[A-Za-z0-9+/=_\\-]"  # what the frequent leads require 16 of, ahead


def ci(word: str) -> str:
    """Case-insensitive literal as character classes, which `re` rejects without entering."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def edge(before: str, literal: str, glue: bool = True) -> str:
    """Lookbehinds, placed right after `literal` (the lead and the rest of the prefix): that
    `before` and `literal` are there, which confirms the lead (a group of leads shares a
    pattern), and that no token character glues them to what precedes, unless that ends a
    `\\n` escape (JSON text: `...\\nsk-ant-...`). Checked before the token's long repeat, so
    `eyJeyJeyJ...` costs a lookbehind per position, not a scan. `/` (a URL's `://`) is left
    to `checks.bounded`."""
    x = f"(?:{before}){re.escape(literal)}"
    if not glue or "{" in before:  # a URL, or the tail of a longer run (a bot id of 8-10
        return f"(?<={x})"  # digits, which checks.py extends)
    return f"(?<={x})(?:(?<![A-Za-z0-9_+\\-]{x})|(?<=\\\\[nrt]{x}))"


def fixed_width(regex: str) -> int:
    """Width of a fixed-width regex of literals, escapes and classes with `{n}` counts."""
    total = 0
    for m in re.finditer(r"(\[[^\]]*\]|\\.|\(\?:[^)]*\)|.)(?:\{(\d+)\})?", regex):
        if m[1].startswith("(?:"):  # an alternation of equal widths: (?:at|ss)
            total += fixed_width(m[1][3:-1].split("|")[0]) * (int(m[2]) if m[2] else 1)
        else:
            total += int(m[2]) if m[2] else 1
    return total


def fmt(
    kind: str,
    prefix: str,
    body: str,
    *,
    lead_at: int | None = None,
    before: str = "",
    check: str = "token",
) -> Rule:
    """A vendor format: `before` (a fixed-width regex), the literal `prefix`, then `body`.

    The lead is `prefix[lead_at]`, by default its first separator (`_-.~$:`) or first
    character; what precedes the lead is checked by lookbehind after the literal rest of the
    prefix, so that `re` rejects most entries on that literal without entering the branch."""
    if lead_at is None:
        seps = [i for i, c in enumerate(prefix) if c in "_-.~$:"]
        lead_at = seps[0] if seps else 0
    head, lead, rest = prefix[:lead_at], prefix[lead_at], prefix[lead_at + 1 :]
    before += re.escape(head)
    back = fixed_width(before)
    body = re.escape(rest) + edge(before, lead + rest, glue=check != "path") + body
    return Rule(kind, lead, body, back, check)


_AN = "[A-Za-z0-9]"
_B64U = "[A-Za-z0-9_-]"
_B64 = "[A-Za-z0-9+/]"
_HEX = "[0-9a-f]"


def _end(chars: str = "A-Za-z0-9_-") -> str:
    return f"(?![{chars}])"


_MODES = "live|test|sandbox|sbox|sdbx|development|production"
_DISCORD = "[A-Za-z][A-Za-z0-9_-]{22,26}\\.[A-Za-z0-9_-]{6}\\.[A-Za-z0-9_-]{27,40}"
_UUID = f"{_HEX}{{8}}-(?:{_HEX}{{4}}-){{3}}{_HEX}{{12}}"

# fmt: off
FORMATS: tuple[Rule, ...] = (
    # AI providers
    fmt("anthropic", "sk-ant-", f"{_B64U}{{24,}}"),
    fmt("openrouter", "sk-or-v1-", f"{_HEX}{{64}}" + _end()),
    fmt("openai", "sk-", f"(?:(?:proj|svcacct|admin|None)-{_B64U}{{20,}}|{_AN}{{32,}}{_end()})"),
    fmt("xai", "xai-", f"{_AN}{{70,}}" + _end(), lead_at=0),
    fmt("groq", "gsk_", f"{_AN}{{48,}}" + _end()),
    fmt("perplexity", "pplx-", f"{_AN}{{40,}}" + _end()),
    fmt("replicate", "r8_", f"{_AN}{{30,}}" + _end(), check="rand"),
    fmt("langsmith", "lsv2_", f"(?:pt|sk)_{_HEX}{{32}}_{_HEX}{{10}}" + _end()),
    fmt("huggingface", "hf_", f"{_AN}{{30,}}" + _end()),
    fmt("huggingface", "api_org_", f"{_AN}{{30,}}" + _end(), lead_at=7),
    fmt("fireworks", "fw_", f"{_AN}{{20,}}" + _end(), check="rand"),
    fmt("pinecone", "pcsk_", f"{_AN}{{4,8}}_{_AN}{{40,}}" + _end()),
    # cloud providers
    *(fmt("aws-access-key", p, f"[A-Z0-9]{{16}}{_end('A-Za-z0-9')}")
      for p in ("AKIA", "ASIA", "ABIA", "ACCA")),
    fmt("aws-session-token", "IQoJb3JpZ2lu", f"{_B64}{{60,}}={{0,2}}(?![A-Za-z0-9+/=])"),
    *(fmt("aws-session-token", p, f"{_B64}{{60,}}={{0,2}}(?![A-Za-z0-9+/=])")
      for p in ("FwoGZXIvYXdz", "FQoGZXIvYXdz")),
    fmt("aws-bedrock", "ABSK", f"{_B64}{{60,}}={{0,2}}(?![A-Za-z0-9+/=])"),
    fmt("aws-bedrock", "bedrock-api-key-", f"{_B64}{{60,}}={{0,2}}", lead_at=7),
    fmt("google", "AIza", f"{_B64U}{{35}}" + _end()),
    fmt("google", "GOCSPX-", f"{_B64U}{{24,}}", lead_at=0),
    fmt("google", "ya29.", f"{_B64U}{{30,}}"),
    fmt("google", "1//0", f"{_B64U}{{40,}}", lead_at=1),
    fmt("firebase", ":APA91b", f"{_B64U}{{100,}}", before=f"AAAA{_B64U}{{7}}"),
    fmt("azure-ad", "Q~", f"[A-Za-z0-9_~.-]{{31,34}}{_end('A-Za-z0-9_~.-')}", lead_at=1,
        before=r"[A-Za-z0-9_~.]{3}[0-9]"),
    *(fmt("digitalocean", p, f"{_HEX}{{64}}" + _end()) for p in ("dop_v1_", "doo_v1_", "dor_v1_")),
    fmt("alibaba", "LTAI", f"{_AN}{{20}}" + _end()),
    fmt("cloudflare", "v1.0-", f"{_HEX}{{24}}-{_HEX}{{146}}" + _end()),
    fmt("heroku", "HRKU-AA", f"{_B64U}{{50,}}" + _end(), lead_at=0),
    fmt("flyio", "fo1_", f"{_B64U}{{40,}}" + _end()),
    *(fmt("flyio", p, f"{_B64}{{60,}}", check="rand") for p in ("fm2_", "fm1a_", "fm1r_")),
    fmt("render", "rnd_", f"{_AN}{{28,}}" + _end(), check="rand"),
    fmt("netlify", "nfp_", f"{_AN}{{36,}}" + _end()),
    fmt("deno", "ddp_", f"{_AN}{{36,}}" + _end()),
    fmt("supabase", "sbp_", f"{_HEX}{{40}}" + _end()),
    fmt("supabase", "sb_secret_", f"{_B64U}{{20,}}"),
    fmt("planetscale", "pscale_", f"(?:tkn|pw|oauth)_{_B64U}{{32,}}"),
    *(fmt("vault", p, f"{_B64U}{{24,}}" + _end()) for p in ("hvs.", "hvb.", "hvr.")),
    fmt("doppler", "dp.", f"(?:pt|st|sa|ct|scim|audit)\\.(?:[a-z0-9]+\\.)?{_AN}{{40,}}"),
    fmt("terraform", ".atlasv1.", f"{_B64U}{{60,}}", before="[A-Za-z0-9]{14}"),
    fmt("pulumi", "pul-", f"{_HEX}{{40}}" + _end()),
    fmt("databricks", "dapi", f"{_HEX}{{32}}(?:-[0-9]{{1,2}})?" + _end(), lead_at=2),
    fmt("dynatrace", "dt0c01.", "[A-Z0-9]{24}\\.[A-Z0-9]{64}" + _end()),
    fmt("new-relic", "NR", f"(?:AK|II|JS|AA)-{_B64U}{{19,}}" + _end(), lead_at=0),
    fmt("new-relic", "NRAL", _end("A-Za-z0-9"), lead_at=0, before=f"{_HEX}{{36}}"),
    fmt("grafana", "glsa_", f"{_AN}{{32}}_{_HEX}{{8}}" + _end()),
    fmt("grafana", "glc_", f"{_B64}{{32,}}={{0,2}}"),
    fmt("grafana", "eyJrIjoi", f"{_B64}{{30,}}={{0,2}}", lead_at=2),
    fmt("sentry", "sntrys_", f"eyJ{_B64}{{60,}}={{0,2}}_{_B64}{{20,}}={{0,2}}"),
    fmt("sentry", "sntryu_", f"{_HEX}{{64}}" + _end()),
    fmt("openshift", "sha256~", f"{_B64U}{{43}}" + _end()),
    fmt("tailscale", "tskey-", f"(?:auth|client|api|scim|webhook)-{_AN}{{6,}}-{_AN}{{20,}}"),
    fmt("scalingo", "tk-us-", f"{_B64U}{{40,}}" + _end()),
    fmt("infracost", "ico-", f"{_AN}{{32}}" + _end()),
    fmt("teams-webhook", ":", r"//[\w.-]*(?:webhook\.office\.com/webhookb2|outlook\.office\.com"
        r"/webhook)/(?P<v>[\w@./-]{60,})", check="path"),
    # code hosting, packages, CI
    fmt("github", "_", f"{_AN}{{36,}}" + _end(), before="gh[pousr]"),
    # a token cut short (pasted in part, or a hand-made fake): the prefix is unambiguous
    fmt("github", "_", f"{_AN}{{30,35}}" + _end(), before="gh[pousr]", check="rand"),
    fmt("github", "github_pat_", f"{_B64U}{{40,}}", lead_at=10),
    *(fmt("gitlab", p + "-", f"{_B64U}{{20,}}(?:\\.[A-Za-z0-9_-]+)*") for p in
      ("glpat", "gldt", "glrt", "glptt", "glsoat", "glft", "glimt", "glcbt", "gloas", "glagent",
       "glffct")),
    fmt("gitlab", "GR1348941", f"{_B64U}{{20,}}"),
    fmt("bitbucket", "ATBB", f"{_AN}{{32,}}" + _end()),
    fmt("atlassian", "AT", f"[AC]TT3xFfG[FN]0{_B64U}{{100,}}=[A-F0-9]{{8}}" + _end()),
    fmt("npm", "npm_", f"{_AN}{{36,}}" + _end()),
    fmt("pypi", "pypi-", "Ag[EI][A-Za-z0-9_-]{50,}" + _end()),
    fmt("rubygems", "rubygems_", f"{_HEX}{{48}}" + _end()),
    fmt("clojars", "CLOJARS_", "[a-z0-9]{60}" + _end(), lead_at=0),
    fmt("docker", "dckr_", f"(?:pat|oat)_{_B64U}{{24,}}" + _end()),
    fmt("jfrog", "AKCp", f"{_AN}{{60,}}" + _end()),
    fmt("sonar", "_", f"{_HEX}{{40}}" + _end(), before="sq[pua]"),
    fmt("sourcegraph", "sgp_", f"(?:{_HEX}{{16}}_)?{_HEX}{{40}}" + _end()),
    fmt("buildkite", "bkua_", f"{_HEX}{{40}}" + _end()),
    fmt("prefect", "pnu_", f"{_AN}{{36}}" + _end()),
    fmt("octopus", "API-", f"[A-Z0-9]{{26,}}{_end('A-Za-z0-9')}", lead_at=0, check="rand"),
    fmt("postman", "PMAK-", f"{_HEX}{{24}}-{_HEX}{{34}}" + _end(), lead_at=0),
    # messaging, mail, payments
    fmt("slack", "xox", "[abposre](?:\\.xox[a-z])?-[0-9][A-Za-z0-9-]{8,}"),
    fmt("slack", "xapp-", "[0-9]-[A-Za-z0-9-]{8,}", lead_at=0),
    fmt("slack-webhook", ":", r"//hooks\.slack\.com/(?:services|workflows|triggers)/"
        r"(?P<v>[A-Za-z0-9_/-]{16,})", check="path"),
    Rule("discord", "MNO", "[A-Za-z](?<=[MNO][A-Za-z])" + _DISCORD[len("[A-Za-z]"):] + _end()),
    fmt("discord-webhook", ":", r"//(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/"
        r"(?P<v>[0-9]{17,20}/[A-Za-z0-9_-]{60,})", check="path"),
    fmt("telegram", ":AA", f"{_B64U}{{33}}" + _end(), before="[0-9]{8}", check="telegram"),
    fmt("twilio", "AC", f"{_HEX}{{32}}(?![0-9A-Za-z])(?:(?P<sep>[\"'`]?[ \\t]*[:,][ \\t]*"
        f"[\"'`]?)(?P<tok>{_HEX}{{32}})(?![0-9A-Za-z]))?", check="twilio"),
    fmt("twilio", "SK", f"{_HEX}{{32}}(?![0-9A-Za-z])"),
    fmt("sendgrid", "SG.", f"{_B64U}{{16,}}\\.{_B64U}{{16,}}", lead_at=0),
    fmt("mailgun", "key-", f"{_HEX}{{32}}" + _end()),
    fmt("mailgun", "-", f"{_HEX}{{8}}-{_HEX}{{8}}" + _end(), before=f"{_HEX}{{32}}"),
    fmt("mailchimp", "-us", "[0-9]{1,2}" + _end(), before=f"{_HEX}{{32}}"),
    fmt("brevo", "x", f"(?:keysib|smtpsib)-{_HEX}{{64}}-{_AN}{{16}}" + _end(), lead_at=0),
    fmt("stripe", "sk_", f"(?:live|test)_{_AN}{{16,}}"),
    fmt("stripe", "rk_", f"(?:live|test)_{_AN}{{16,}}"),
    fmt("stripe", "whsec_", f"{_B64}{{24,}}"),
    *(fmt("square", p, f"{_B64U}{{22,}}") for p in ("sq0atp-", "sq0csp-")),
    fmt("square", "EAAA", f"{_B64U}{{56,}}" + _end()),
    fmt("facebook", "EAA", "[B-Z][A-Za-z0-9]{90,}" + _end()),
    fmt("shopify", "_", f"{_HEX}{{32}}" + _end(), before="shp(?:at|ss|ca|pa)"),
    fmt("shippo", "shippo_", f"(?:live|test)_{_HEX}{{40}}" + _end()),
    fmt("paypal", "access_token$", f"(?:production|sandbox)\\$[a-z0-9]{{16}}\\${_HEX}{{32}}",
        lead_at=12),
    fmt("plaid", "access-", f"(?:sandbox|development|production)-{_UUID}"),
    fmt("flutterwave", "FLWSECK", f"(?:_TEST)?-{_HEX}{{32}}-X", lead_at=0),
    fmt("duffel", "duffel_", f"(?:live|test)_{_B64U}{{40,}}"),
    fmt("easypost", "EZ", f"[AT]K{_AN}{{54}}" + _end()),
    fmt("resend", "re_", f"{_AN}{{8}}_{_AN}{{24}}" + _end(), check="rand"),
    # productivity and the rest
    fmt("linear", "lin_", f"(?:api_{_AN}{{40}}|oauth_{_HEX}{{64}})" + _end()),
    fmt("notion", "secret_", f"{_AN}{{43}}" + _end(), check="rand"),
    fmt("notion", "ntn_", f"[0-9]{{11}}{_AN}{{35}}" + _end()),
    fmt("figma", "figd_", f"{_B64U}{{40,}}" + _end()),
    fmt("airtable", ".", f"{_HEX}{{64}}" + _end(), before=f"pat{_AN}{{14}}"),
    fmt("hubspot", "pat-", f"(?:na|eu|ap)[0-9]-{_UUID}"),
    fmt("contentful", "CFPAT-", f"{_B64U}{{43}}" + _end(), lead_at=0),
    fmt("typeform", "tfp_", f"{_B64U}{{40,}}" + _end()),
    fmt("readme", "rdme_", "[a-z0-9]{70}" + _end()),
    fmt("mapbox", "sk.", f"eyJ{_B64U}{{20,}}\\.{_B64U}{{20,}}"),
    fmt("twitter", "A" * 21, "[A-Za-z0-9%]{50,}" + _end("A-Za-z0-9%")),
    fmt("adafruit", "aio_", f"{_AN}{{28}}" + _end()),
    fmt("frameio", "fio-u-", f"{_B64U}{{64}}" + _end()),
    fmt("age", "AGE-SECRET-KEY-1", "[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}" + _end(), lead_at=0),
    fmt("1password", "ops_", f"eyJ{_B64}{{50,}}={{0,2}}"),
    fmt("1password", "A3-", "[A-Z0-9]{6}-(?:[A-Z0-9]{5,6}-){4}[A-Z0-9]{5}" + _end(), lead_at=0),
    fmt("jwt", "eyJ", f"{_B64U}{{8,}}\\.{_B64U}{{8,}}\\.{_B64U}*", lead_at=2),
    # Live/test-mode keys of services without a rule of their own (payment providers copy
    # Stripe: `rzp_live_`, `skey_test_`, `xnd_development_`, `pdl_sdbx_apikey_`; Mollie's
    # and GoCardless' bare `live_`/`test_`): checks.py reads the vendor prefix back and
    # leaves the publishable ones (`pk_`, `pkey_`) alone.
    Rule("api-key", "_", f"(?:{_MODES})_[A-Za-z0-9_]{{14,}}" + _end(), check="mode"),
    fmt("api-key", "_", f"{_AN}{{24,}}" + _end(), before="(?:live|test)", check="rand"),
)
# fmt: on

# -- context: a value is a secret because of where it stands --------------------------------

_Q = r"""\\{0,3}["'`]"""  # a quote, possibly escaped once or twice (JSON inside JSON)
# the closing quote of a quoted key, a subscript's `]`, markdown bold (`**Password**: x`)
_KEYEND = rf"(?P<kq>{_Q})?\]?(?:\*\*)?"
# `k=v`, `k: v`, `k := v`, `k => v`, `k: Type = v`, `<k>v</k>`, `key="k" value="v"`,
# `("k", "v")`, `k is v` (prose), `--k v` (whitespace: checked later). Atomic: once the key is
# read one way it stays so, or a second pass over the redacted text could read it another way
# (`K: T = [REDACTED]` as `K: <value>`) and redaction not be idempotent.
# str, Optional[str], t.Dict[str, int], &'a str, Option<String>
_TYPE = r"[&*]?(?:'\w+[ \t]+)?(?:mut[ \t]+)?[A-Za-z_][\w.]*(?:[\[<][\w.,|&' \[\]<>]{0,40}[\]>])?"
# Prose: "the password is x", "password? it's x", "the password for the router: x", "the
# token for the bot — x", "api key → x". What follows is judged as prose (keys.py).
_FOR = r"(?:[ \t]+(?:for|of|on)(?:[ \t]+[\w.@-]{1,40}){1,3}?)"
_PROSE_SEP = (
    rf"{_FOR}?\??[ \t]+(?:it'?s|(?:is|ist|was|are|to|(?:should|will|must)[ \t]+be|has[ \t]+been"
    r"|(?:changed|set)[ \t]+to)(?:[ \t]+(?:now|still|just|currently|actually|simply))?)[ \t]"
    rf"|{_FOR}?[ \t]*(?:→|->|—|–)[ \t]|{_FOR}:[ \t]|\?[ \t]*\r?\n(?=[^\s>]{{7}})"
)
_SEP = (
    rf"[ \t]*(?>(?P<ann>:[ \t]*{_TYPE}(?:[ \t]*\|[ \t]*{_TYPE}){{0,3}}[ \t]+=(?![=>]))|:=|=>"
    r"|=(?!=)|:(?![:/])|(?P<xml>>(?=[^<\s]{1,512}</))|(?P<attr>[ \t]+[vV]alue=)|(?P<pair>,)"
    r"|(?P<env>(?:\r?\n|\\n)[ \t]*(?:-[ \t]+)?value:)"
    rf"|(?P<is>{_PROSE_SEP})|(?P<ws>[ \t]+(?=[^\s:=]{{6}}|[\"'`])))[ \t]*(?:(?<=:)\*\*[ \t]*)?"
)
# A quoted value (string prefixes b"", r'' allowed) or a bare one; the bare one must not be
# followed by `(`/`[` (a call or subscript: `pwd = os.getcwd()`, `token = tokens[0]`).
_VAL = (
    r"""(?:[bBrRuUfF]{0,2}(?P<q>\\{0,3}")(?P<v>[^\s"\\]{1,512})(?P=q)"""
    r"""|[bBrRuUfF]{0,2}(?P<q2>\\{0,3}')(?P<v2>[^\s'\\]{1,512})(?P=q2)"""
    r"""|`(?P<v3>[^\s`\\]{1,512})`"""
    r"""|(?P<w>[^\s"'`\\<>(){}\[\]]{1,512}+)(?![(\[{]))"""
)
_SUFFIX = "(?:[_.-]?(?:" + "|".join(ci(w) for w in ("value", "base64", "b64", "base")) + "))?"
_ASSIGN = _SUFFIX + _KEYEND + _SEP + _VAL
_TOKEN68 = r"[A-Za-z0-9\-._~+/]{8,}+=*(?![(\[])"  # RFC 7235 token68, not a call
_B64RUN = "[A-Za-z0-9+/]"

# fmt: off
CONTEXT: tuple[Rule, ...] = (
    # Blocks. A PEM body runs possessively over base64, whitespace, (escaped) newlines and
    # header lines (`Proc-Type: 4,ENCRYPTED`) up to END. A block cut off before END (a `head`
    # of a key file) still loses its base64 lines; the prose after them is kept.
    Rule("private-key", "B", r"EGIN(?<=-----BEGIN)[A-Z0-9 ]{0,24}PRIVATE KEY(?: BLOCK)?-----"
         r"(?:(?P<v>(?:[A-Za-z0-9+/=\s,:]|\\{1,2}[nrt]|-(?!-)){0,20000}+)"
         r"-----END[A-Z0-9 ]{0,24}PRIVATE KEY(?: BLOCK)?-----"
         r"|(?P<w>(?:(?:\s|\\{1,2}[nrt])+(?:[A-Za-z0-9+/=]{16,}"
         r"|(?:Proc-Type|DEK-Info|Comment|Version):[^\n\\]*))++))", back=5, check="pem"),
    Rule("private-key", "P", r"uTTY-User-Key-File-(?<=PuTTY-User-Key-File-)[0-9]+:[^\r\n\\]*"
         r"(?:(?:\r?\n|\\r?\\n)(?:(?:Encryption|Comment|Public-Lines|Private-Lines|Private-MAC"
         r"|Private-Hash|Key-Derivation|Argon2-[A-Za-z]+):[^\r\n\\]*"
         r"|[A-Za-z0-9+/=]{8,}(?![^\r\n\\])))*+", check="ppk"),
    fmt("private-key", "LS0tLS1CRUdJTi", f"{_B64RUN}{{16,}}={{0,2}}", check="b64pem"),
    # Headers and schemes.
    Rule("bearer", "zZ", ci("ation") + f"(?<={ci('authorization')})" + _KEYEND
         + r"[ \t]*[:=][ \t]*(?:" + _Q + r")?(?>(?P<s>[A-Za-z][A-Za-z-]*)[ \t]+)?(?P<v>"
         + _TOKEN68 + ")", check="header"),
    Rule("bearer", "bB", ci("earer") + f"(?<={ci('bearer')})" + r"[ \t]+(?P<v>" + _TOKEN68
         + ")", check="bearer"),
    Rule("basic-auth", "bB", ci("asic") + f"(?<={ci('basic')})" + r"[ \t]+(?P<v>" + _B64RUN
         + r"{6,}={0,2})(?![A-Za-z0-9+/=])", check="basic"),
    Rule("url-credentials", ":", r"//(?<=[A-Za-z0-9+.\-]://)[^\s:/?#@\"'`\\<>\[\]]{0,128}:"
         r"(?P<v>[^\s/\"'`\\<>]{1,256})@(?=[A-Za-z0-9\[])", check="url"),
    Rule("url-credentials", "@", r"(?<=@)(?=(?:tcp|unix)\()", check="dsn"),
    *(Rule("azure", c, r"sig=(?P<v>[A-Za-z0-9%+/]{30,}={0,2})", check="path") for c in "?&"),
    # Command lines: curl -u user:pass, mysql -pSECRET, docker login -p X, gh secret --body.
    Rule("basic-auth", "-", r"(?:u[ \t]*|-user(?:[ \t]+|=))(?P<q>[\"']?)"
         r"(?P<v>[^\s\"'`:]{0,128}:[^\s\"'`]{1,256})(?P=q)", check="curl"),
    Rule("secret-assignment", "-", r"p(?:'(?P<v>[^'\n]{1,256})'|\"(?P<v2>[^\"\n]{1,256})\""
         r"|(?P<w>[^\s'\"`\-][^\s'\"`]{0,255}))", check="mysql"),
    Rule("secret-assignment", "-", r"(?P<f>[pawPt]|-body)(?:[ \t]+|(?<=y)=)(?P<q>[\"']?)"
         r"(?P<v>[^\s\"'`\-][^\s\"'`]{0,511})(?P=q)", check="cliflag"),
    Rule("secret-assignment", "I", r"DENTIFIED(?<=IDENTIFIED)[ \t]+BY[ \t]+(?:PASSWORD[ \t]+)?"
         r"(?P<q>['\"])(?P<v>[^'\"\s]{1,256})(?P=q)", check="sql"),
    # Chat: "login is admin / S3cr3t!x", "log in with deploy / x": user / password.
    Rule("secret-assignment", "/", r"(?<=[ \t]/)[ \t]+(?P<v>[^\s\"'`/]{6,128})", check="login"),
    # A Kubernetes Secret: every value under its data:/stringData:, found from `kind: Secret`.
    Rule("kubernetes-secret", "S", r"ecret(?=[\"'\\]{0,2}[ \t]*(?:[,}\r\n]|\\[nr]|$))"
         r"(?:(?<=kind: Secret)|(?<=kind:Secret)|(?<=\"kind\": \"Secret)|(?<=\"kind\":\"Secret)"
         r"|(?<=kind: \"Secret)|(?<=kind: 'Secret)|(?<=\\\"kind\\\": \\\"Secret))",
         check="k8s"),
    # Assignments to secret-named keys, anchored on the key's last word; checks.py reads the
    # whole key (`DB_PASSWORD`, `apiKey`, `x-api-key`) and judges the value.
    Rule("secret-assignment", "pP", f"(?:{ci('ass')}(?<={ci('pass')})(?:{ci('word')}|{ci('wd')}"
         f"|{ci('wort')}|{ci('phrase')})?|{ci('wd')}(?<={ci('pwd')})|[wW](?<={ci('pw')})|AT(?<=_PAT))"
         + _ASSIGN, check="assign"),
    Rule("secret-assignment", "cC", f"(?:{ci('ret')}(?<={ci('secret')})|{ci('red')}"
         f"(?<={ci('cred')}){ci('ential')}[sS]?)" + _ASSIGN, check="assign"),
    Rule("secret-assignment", "kK", f"(?:{ci('en')}(?<={ci('token')})|{ci('ey')}"
         rf"(?:(?<=[A-Za-z0-9 \t\n_.\-]{ci('key')})|(?<![\s\S]{{4}})))" + _ASSIGN, check="assign"),
    Rule("secret-assignment", "uU", ci("th") + f"(?<={ci('auth')})" + _ASSIGN, check="assign"),
)
# fmt: on

RULES: tuple[Rule, ...] = FORMATS + CONTEXT
# Types a check gives besides its rule's: `aws_secret_access_key = ...` (assignments).
REDACTION_TYPES: frozenset[str] = frozenset(r.type for r in RULES) | {"aws-secret-key", "razorpay"}

_FILTERED = "_-."  # frequent in code and prose: their long formats first need 16 token chars
_FILTER = "(?=[A-Za-z0-9+/=_.~-]{16})"
# Rules are grouped by lead and each group is scanned in its own pass: `re` skips quickly to
# the next candidate position only when a pattern starts with one literal, one character
# class or an alternation of literals, and it then tries every alternative at that position
# (~5-12 ns each). Scanning for a literal costs ~0.8 ns a character, for a class ~2.7 ns
# (engram's source code). A class group's rules confirm their own lead by a lookbehind after
# their first literal or class, which `re` rejects without entering (`fmt`, `ci`). Measured
# on engram's source: 7 passes of few alternatives are ~3x faster than one of 35.
_PASSES = (("cCpPuUbBkKzZ",), ("ABCEFGHIJLMNOPS",), (".",), ("_",), (":",), ("-",),
           ("~", "$", "@", "/", "x", "&", "?"))  # fmt: skip
_KEY_WORD_CHECKS = frozenset({"assign", "header", "bearer", "basic"})
_LATE = frozenset(
    {"assign", "header", "bearer", "basic", "url", "curl", "mysql", "cliflag", "login"}
)


@dataclass(frozen=True, slots=True)
class Pass:
    """One compiled pattern and, for each rule's end marker, the rule and its groups.

    An alternation stops at the first alternative that matches; if the check then rejects
    that rule, `after` gives the rules that come after it, each as its own pattern, to try at
    the same position. Vendor formats come first in each group, so this is rare; each
    pattern is compiled the first time it is needed."""

    pattern: re.Pattern[str]
    markers: dict[int, tuple[Rule, dict[str, int]]]
    order: tuple[tuple[int, str], ...]  # (marker, the rule's own pattern), in pattern order
    _singles: dict[int, tuple[re.Pattern[str], dict[str, int]]] = field(default_factory=dict)

    def after(self, marker: int) -> Iterator[tuple[Rule, re.Pattern[str], dict[str, int]]]:
        markers = [m for m, _ in self.order]
        for m, source in self.order[markers.index(marker) + 1 :]:
            if m not in self._singles:
                self._singles[m] = _single(source)
            yield (self.markers[m][0], *self._singles[m])


def _single(source: str) -> tuple[re.Pattern[str], dict[str, int]]:
    pattern = re.compile(source)
    return pattern, {n.rpartition("_")[0]: i for n, i in pattern.groupindex.items()}


def _place(rule: Rule) -> tuple[int, str]:
    """The pass (index into _PASSES) and the lead group a rule goes to: the first pass is for
    key words, other rules go there only if no other pass has their lead (`dapi`)."""
    for keep_first in (False, True):
        for i, groups in enumerate(_PASSES):
            if i == 0 and rule.check not in _KEY_WORD_CHECKS and not keep_first:
                continue
            for group in groups:
                if set(rule.lead) <= set(group):
                    return i, group
    raise ValueError(f"no pass for lead {rule.lead!r}")


def compile_rules(rules: tuple[Rule, ...] = RULES) -> list[Pass]:
    """One pattern per pass. Every rule ends with an empty marker group `r_<i>`: it closes
    last, so `lastindex` names the rule that matched. Group names get a `_<i>` suffix."""
    plain: dict[tuple[int, str], list[tuple[int, str]]] = {}
    filtered: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for i, rule in enumerate(rules):
        where = _place(rule)
        body = re.sub(r"\(\?P([<=])(\w+)", rf"(?P\1\2_{i}", rule.body)
        long_format = where[1] in _FILTERED and rule.check in ("token", "rand", "mode")
        target = filtered if long_format and _min_width(rule.body) >= 16 else plain
        target.setdefault(where, []).append((i, f"(?:{body})(?P<r_{i}>)"))
    compiled = []
    for n, groups in enumerate(_PASSES):
        alts, order = [], []
        for group in groups:
            lead = re.escape(group) if len(group) == 1 else "[" + re.escape(group) + "]"
            inner = []
            if (n, group) in filtered:  # vendor formats first: a context rule's rejection
                inner.append(_FILTER + "(?:" + "|".join(a for _, a in filtered[n, group]) + ")")
                order += [(i, lead + _FILTER + alt) for i, alt in filtered[n, group]]
            # then the other formats, then the context rules (`-p`, `key=`)
            rest = sorted(plain.get((n, group), []), key=lambda ia: rules[ia[0]].check in _LATE)
            inner += [alt for _, alt in rest]
            order += [(i, lead + alt) for i, alt in rest]
            if inner:
                alts.append(lead + "(?:" + "|".join(inner) + ")")
        if alts:
            pattern = re.compile("|".join(alts))
            found: dict[int, dict[str, int]] = {}
            for name, index in pattern.groupindex.items():
                kind, _, rule_index = name.rpartition("_")
                found.setdefault(int(rule_index), {})[kind] = index
            marker_of = {r: g.pop("r") for r, g in found.items()}
            markers = {marker_of[r]: (rules[r], g) for r, g in found.items()}
            ordered = tuple((marker_of[r], src) for r, src in order)
            compiled.append(Pass(pattern, markers, ordered))
    return compiled


def _min_width(regex: str) -> int:
    from re import _parser  # type: ignore[attr-defined]  # the stdlib's own width analysis

    return int(_parser.parse(regex).getwidth()[0])
