"""Judging a value by itself: a placeholder, a word, code, or something random enough to be a key.

Secrets that have no vendor prefix (a `DB_PASSWORD`, a Datadog key, a Cloudflare token) are
only recognisable by the key they are assigned to and by what the value looks like. Round 1
kept any unquoted value containing three capitalised words (`QmTuvKpaRbn` in
`x9QmTuvKpaRbnW2z`) as "a type name", which let 10-53 % of random values through. Here the
question is asked the other way round: can the value be read as words? Identifiers, type
names and passphrases split into segments made of common English bigrams
(`PKCS7PrivateKeyTypes`, `OPENAI_API_KEY`, `correct-horse`); random strings do not (`x`,
`Qm`, `Tuv`, `Kpa`, `Rbn`, `W`, `z`). See `word_share` for the measured rates.
"""

from __future__ import annotations

import re

# The letter bigrams that make up 97 % of those inside the words of CPython's standard library
# (scripts/redact_bigrams.py): a random bigram is one of them 39 % of the time.
_COMMON_BIGRAMS = frozenset(
    """ab ac ad af ag ai ak al am an ap ar as at au av aw ax ay ba be bi bj bl bo br bu by ca cc
    ce ch ci ck cl co cr cs ct cu cy da dd de di dl do dr ds du ea eb ec ed ee ef eg ei el em en
    eo ep eq er es et ev ew ex ey fa fe ff fi fl fo fr ft fu ge gh gi gl gn gr gs gu ha he hi ho
    hr ht ia ib ic id ie if ig il im in io ip ir is it iv ix iz je ke ki ks kw la ld le lf li ll
    lo ls lt lu ly ma mb me mi mm mo mp ms mu na nc nd ne nf ng ni nk nl nn no np ns nt nu nv oa
    ob oc od of og oi ok ol om on oo op or os ot ou ov ow ox pa pe pi pl po pp pr pt pu py qu ra
    rc rd re rg ri rk rl rm rn ro rr rs rt ru rv ry sa sc se sh si sk sl sm so sp ss st su sy ta
    tc td te th ti tk tl to tp tr ts tt tu tw ty ua ub uc ue uf ui ul um un up ur us ut va ve vi
    wa we wh wi wn wo wr xc xe xi xp xt yp ys yt ze""".split()
)
# Segments of an identifier: an acronym run, a (capitalised) word, a digit run.
_SEGMENT = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _readable(segment: str) -> bool:
    """Three quarters of the segment's bigrams are common in English words (85 % from eight
    letters on: a long random run of lower case reaches 75 % too often)."""
    low = segment.lower()
    pairs = [low[i : i + 2] for i in range(len(low) - 1)]
    need = 0.75 if len(low) < 8 else 0.85
    return sum(p in _COMMON_BIGRAMS for p in pairs) >= need * len(pairs)


def _shouty(value: str) -> bool:
    """OPENAI_API_KEY, DB_PASSWORD, GCP_SA_KEY: words and acronyms joined by `_`."""
    parts = [p for p in re.split(r"[_.\-]+", value) if p]
    return len(parts) > 1 and all(_shouty_word(p) for p in parts)


def _shouty_word(part: str) -> bool:
    letters = part.rstrip("0123456789")
    return letters.isalpha() and (len(letters) <= 4 or _readable(letters))


def _segments(value: str) -> list[str]:
    """Letter segments, split at case changes, digits and punctuation; an upper-case value is
    judged letter by letter (K7QZPXNQP is no sequence of acronyms)."""
    if not any(c.islower() for c in value):
        value = value.lower()
    return [s for s in _SEGMENT.findall(value[:160]) if not s[0].isdigit()]


def word_share(value: str) -> float:
    """The share of `value`'s letters that sit in segments readable as words (0..1).

    A segment of two or more letters is readable when its bigrams are common in English words
    (`Private`, `Key`, `horse`); single letters count against, acronyms of up to four capitals
    inside mixed-case identifiers (`API`, `PKCS`) for neither side."""
    if not any(c.islower() for c in value) and _shouty(value):
        return 1.0
    good = total = 0
    for seg in _segments(value):
        n = len(seg)
        if 1 < n <= 4 and seg.isupper():
            continue
        total += n
        if n > 1 and _readable(seg):
            good += n
    return good / total if total else 0.0


def is_wordy(value: str) -> bool:
    """Whether `value` reads as words (an identifier, a label, a passphrase), not as noise:
    the lenient reading, for recognising code (`hashedPassword`, `GateSettings`)."""
    return word_share(value) >= 0.8


_HEXISH = re.compile(r"[0-9a-f-]+|[0-9A-F-]+")


def reads_as_words(value: str) -> bool:
    """The strict reading, for deciding that a value is no generated secret: 90 % of its
    letters readable, in segments of 3.5 letters on average. Measured over 20,000 random
    strings each: 0.03 % of 16-letter mixed-case, 0.01 % of 16-character alphanumeric and
    0.15 % of 16-letter lower-case ones pass; 92 % of the identifiers of engram's source and
    98 % of the words of its docs do."""
    if not any(c.islower() for c in value) and _shouty(value):
        return True
    if _HEXISH.fullmatch(value) and sum(c.isdigit() for c in value) >= 2:
        return False  # hex data: `deadbeef`-like runs of a-f read as English too easily
    segments = _segments(value)
    if not segments or word_share(value) < 0.9:
        return False
    return sum(map(len, segments)) / len(segments) >= 3.5


def looks_random(value: str, min_len: int = 12) -> bool:
    """Whether `value` looks machine-generated: long enough, not words, not a number."""
    if len(value) < min_len or len(set(value)) < 6:
        return False
    core = value.replace("-", "").replace(".", "").replace("_", "")
    if core.isdigit():
        return False  # ids, timestamps, phone numbers
    return not reads_as_words(value)


_ASCENDING = "0123456789abcdefghijklmnopqrstuvwxyz"


def sequential_share(value: str) -> float:
    """The share of characters in ascending runs of three or more (`abc123`, `ABCdefGh`).
    Placeholders are short: a value over 48 characters scores 0."""
    if len(value) > 48:
        return 0.0
    low = value.lower()
    covered = [False] * len(low)
    for i in range(len(low) - 2):
        if low[i : i + 3] in _ASCENDING:
            covered[i] = covered[i + 1] = covered[i + 2] = True
    return sum(covered) / len(low) if low else 0.0


# Documentation values, template variables and masks are not secrets:
# ${X} $X %s {{x}} <k> @X@ [MASK] #{x}, a colour #fff, a YAML tag !vault, an Ansible lookup.
_PH_START = re.compile(r"[$%{<\[]|@\w+@$|#\{|#[0-9a-fA-F]{3,8}$|![A-Za-z]+$")
_PH_SHAPES = re.compile(r"\{[\w.]*\}|\{\{|<[\w -]+>|\.\.\.|…|\*\*\*|•|x{5}|X{5}")
_PH_TEXT = ("example", "placeholder", "changeme", "change-me", "change_me", "redacted",
            "replace-me", "replace_me", "replaceme", "replace-with", "replace_with",
            "insert-", "insert_", "not-needed", "not_needed")  # fmt: skip
_PH_YOUR = re.compile(r"(?:^|[^a-z])your")  # your-api-key, YOUR_TOKEN, sk-your-key
_PH_MY = re.compile(r"my[-_ ]?(?:own[-_ ]?)?(?:secret|private|access|token|pass|api|auth|app|key)")
_PH_WORDS = frozenset(
    """your here todo tbd fixme dummy fake mock sample xxx replace test testing demo example
    foo bar baz none null nil empty unset hidden filtered masked secret password""".split()
)
# Words that are values of a secret-named key without being one (`auth: oauth2`,
# `credentials: include`), and the well-known default logins of local services (CI
# containers, docs): postgres/postgres, root/root, guest/guest, minioadmin, ...
STOPWORDS = frozenset(
    """password passwd passphrase pass pwd secret secrets token tokens key apikey api_key auth
    credential credentials none null nil true false yes no on off undefined required optional
    default empty hidden string str bytes text int integer number boolean bool object any
    unknown secretstr env bearer basic digest oauth oauth2 jwt test testing include omit
    same-origin tiger postgres postgresql root admin administrator guest user username
    minioadmin changeme mysql redis mongo elastic demo example sample dev development local
    localhost ollama dummy fake mock letmein qwerty welcome sensitive masked filtered""".split()
)  # `tiger`: the scott/tiger demo login of SQLAlchemy and Oracle docs


def is_placeholder(value: str) -> bool:
    """Whether `value` is a stand-in (`<your-key>`, `${API_KEY}`, `xxxx`, `abc123`, docs)."""
    if not value or _PH_START.match(value):
        return True
    head = value[:200]  # placeholders are short; a long token is not read to its end
    low = head.lower()
    if _PH_SHAPES.search(head) or any(t in low for t in _PH_TEXT) or _PH_YOUR.search(low):
        return True
    if _PH_MY.search(low):
        return True
    if len(set(low)) < 4 or sequential_share(value) >= 0.7:
        return True  # xxxxxx, ******, 000000, abc123, 123456, ABCdefGhIJ...
    if low.rstrip("0123456789!?.#*@$") in STOPWORDS:
        return True  # password123, admin!, secret1
    return any(w in _PH_WORDS for w in _NON_ALNUM.split(low))


_NON_ALNUM = re.compile(r"[^a-z0-9]+")


# Builtin and common type names: `password: str`, `token: string;`, `key: Buffer`.
_TYPE_WORDS = frozenset(
    """str string bytes bytearray int float number bool boolean any unknown object dict list
    tuple set optional union none void buffer uint8array char byte rune secretstr secretbytes
    secret text varchar ndarray tensor path""".split()
)
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_DOTTED = re.compile(r"[A-Za-z_$][\w$]*(?:\??\.[A-Za-z_$][\w$]*)+!?")
_CODE_ROOTS = frozenset(
    """self this cls os process settings config cfg conf env environ import request req args
    opts options params ctx context app current_app creds secrets st window document props
    state vars data form input event values viper System Environment ENV Deno Bun flask django
    cfg_ keyring getpass os_environ""".split()
)
_SHOUTY = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_SECRET_WORD = re.compile(r"(?i)pass|pwd|secret|token|key|cred|auth")


def is_annotation(value: str) -> bool:
    """`SecretStr`, `str`, `Optional`, `AccessToken`, `t.Dict`: a type, not a YAML value."""
    if value.lower() in _TYPE_WORDS:
        return True
    if "$" in value:
        return False  # JS identifiers may hold `$`, type names don't: `Raven58$` is a value
    if _DOTTED.fullmatch(value):  # t.Optional, np.ndarray, models.User: a type's name last
        parts = value.split(".")
        if not (parts[-1][:1].isupper() or parts[-1].lower() in _TYPE_WORDS):
            return False
        return all(reads_as_words(p) or p.lower() in _TYPE_WORDS for p in parts)
    return bool(_IDENT.fullmatch(value)) and value[0].isupper() and reads_as_words(value)


def is_code_reference(value: str, *, shouty_key: bool) -> bool:
    """Whether an unquoted value names something instead of being a literal.

    `settings.openai_api_key`, `process.env.TOKEN`, `GITHUB_TOKEN`, `self._password`,
    `hashedPassword`, `user_input`. A single lower-case word (`sunshine2`) is not a reference:
    it may be a password. Under an env-style key (`DB_PASSWORD=...`) multi-word values are
    taken as values (`correct_horse`), except names of other variables."""
    stripped = value.rstrip("!")
    if _DOTTED.fullmatch(stripped):
        parts = stripped.replace("?", "").split(".")
        if parts[0].lstrip("_") in _CODE_ROOTS or _SHOUTY.fullmatch(parts[-1]):
            return True
        if any(reads_as_words(p) and not p.islower() for p in parts):
            return True  # settings.openaiKey, ed25519.Ed25519PrivateKey
        return bool(_SECRET_WORD.search(parts[-1])) and not shouty_key  # user.password
    if not _IDENT.fullmatch(stripped):
        return False
    if _SHOUTY.fullmatch(stripped) and reads_as_words(stripped):
        return True  # another variable's name: GITHUB_TOKEN, OPENAI_API_KEY
    if _SECRET_WORD.search(stripped) and re.search(r"_|[a-z][A-Z]", stripped):
        return reads_as_words(stripped)  # access_token, hashedPassword, self._password
    multiword = "_" in stripped.strip("_") or re.search(r"[a-z][A-Z]", stripped) is not None
    return multiword and reads_as_words(stripped) and not shouty_key


_MASKED = re.compile(r"x{5}|X{5}|\*|•|\.\.\.|…|(?i:example)")


def is_fake_token(value: str) -> bool:
    """Whether a value in a vendor's token format is a mask or a docs sample (`ghp_xxxxx`)."""
    return bool(_MASKED.search(value)) or len(set(value)) < 8 or sequential_share(value) >= 0.5
