"""Build the labelled redaction corpus and split it into a tuning and a held-out half.

    .venv/bin/python tests/data/redaction/build.py

Reads the hand-written templates in `source/` and writes `tuning.jsonl` and `heldout.jsonl`,
one record per line:

    {"id": "s-pypi-3", "label": "secret", "type": "pypi", "context": "shell",
     "secrets": [{"type": "pypi", "value": "pypi-AgEI..."}], "text": "twine upload ..."}
    {"id": "b-aws-arn-1", "label": "benign", "type": "aws-arn", "context": "output",
     "secrets": [], "text": "arn:aws:secretsmanager:..."}

A secret record's `type` is the `[REDACTED:<type>]` marker expected for it, and `secrets`
lists every span that must disappear (a few texts hold a second secret of another type). A
benign record's `type` is the kind of look-alike; nothing in its text may be redacted.

The split is made once, before any rule is tuned, and committed with the data: within each
type the records are shuffled with a fixed seed and dealt alternately to the two halves, so
every type is in both. The round-1 corpus (`source/round1-*.txt`), which the round-1 rules
were tuned on, goes to the tuning half only, and so do `source/tuning-*.txt`, written after
the split to widen the tuning half. `source/s7-*.txt` (session 7: passwords under `_pw`-style
keys and in chat, keys with unknown live/test prefixes, UUID tokens, short GitHub tokens, and
their look-alikes) were written before the rules changed for them and are split by the same
method with their own generator, appended to both halves. Values come from seeded
generators, so a rerun reproduces the files byte for byte; the committed files are the
corpus of record.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "source"
SEED = 20250714

AN = string.ascii_letters + string.digits
B64 = AN + "+/"
B64U = AN + "-_"
BECH = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
WORDS = """amber anchor apple arrow aspen atlas autumn badger banjo basil beacon birch bison
bramble breeze bronze cactus canyon cedar cherry cinder clover cobalt comet copper coral
cosmos cricket crimson dahlia delta ember falcon fennel fern fjord forest fox galaxy garnet
glacier granite harbor hazel heron indigo island ivory jade jasper juniper kestrel lagoon
lantern lemon lilac lotus lunar magnet maple marble meadow meteor mint monsoon moss nebula
nectar nimbus oak ocean olive onyx orbit orchid otter pebble pepper pine plum polar poppy
quartz quill raven reef river robin saffron sage sapphire shadow silver sparrow spruce
storm summit sunset tango thistle thunder tiger topaz tulip tundra valley velvet violet
walnut willow winter zephyr""".split()


def _rs(rng: random.Random, n: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _password(rng: random.Random) -> str:
    """A password a person or a password manager would pick (never a placeholder)."""
    style = rng.randrange(5)
    if style == 0:  # Word + digits + symbol
        return (
            rng.choice(WORDS).capitalize()
            + _rs(rng, rng.randint(2, 4), string.digits)
            + rng.choice("!#$%&*?@^")
        )
    if style == 1:  # passphrase
        words = rng.sample(WORDS, rng.randint(3, 4))
        return rng.choice("-._").join(words) + str(rng.randint(1, 99))
    if style == 2:  # password manager, with symbols
        return _rs(rng, rng.randint(14, 24), AN + "!#%&*+-=?@^_")
    if style == 3:  # leetspeak word pair
        table = str.maketrans("aeios", "43105")
        return (rng.choice(WORDS) + rng.choice(WORDS).capitalize()).translate(table) + rng.choice(
            "!?#"
        )
    return _rs(rng, rng.randint(12, 20), AN)  # random alphanumeric


_LEET = str.maketrans("aeios", "43105")


def _human(rng: random.Random, style: str) -> str:
    """Passwords people type into chat and config (session 7): `tangerine-Walrus-418`,
    `hunter2hunter2`, `S3cr3t!x`, `Kestrel@Bay#19`; `hpw` picks any of them or `pw`."""
    if style == "hpw":
        style = rng.choice(["phrase", "double", "leet", "symbols", "symbols", "pw"])
    if style == "phrase":
        a, b = rng.sample(WORDS, 2)
        return f"{a}{rng.choice('-.')}{b.capitalize()}{rng.choice('-.')}{rng.randint(100, 999)}"
    if style == "double":
        return (rng.choice(WORDS) + str(rng.randint(1, 9))) * 2
    if style == "leet":
        word = rng.choice(WORDS).capitalize().translate(_LEET)
        return word + rng.choice("!#@") + rng.choice(string.ascii_lowercase)
    if style == "symbols":
        a, b = rng.sample(WORDS, 2)
        sym = rng.sample("#!@", 2)
        return f"{a.capitalize()}{sym[0]}{b.capitalize()}{sym[1]}{rng.randint(10, 99)}"
    return _password(rng)


def _pem_body(rng: random.Random, lines: int) -> list[str]:
    return [_rs(rng, 64, B64) for _ in range(lines)] + [_rs(rng, rng.randint(20, 60), B64) + "=="]


def _pem(rng: random.Random, kind: str) -> str:
    lines = {"OPENSSH PRIVATE KEY": 6, "EC PRIVATE KEY": 3, "PRIVATE KEY": 25}.get(kind, 24)
    body = "\n".join(_pem_body(rng, lines))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


def _ppk(rng: random.Random, alg: str) -> str:
    pub = 2 if alg == "ssh-ed25519" else 6
    priv = 1 if alg == "ssh-ed25519" else 14
    lines = [f"PuTTY-User-Key-File-3: {alg}", "Encryption: none", f"Comment: {alg}-key-20250112"]
    lines.append(f"Public-Lines: {pub}")
    lines += [_rs(rng, 64, B64) for _ in range(pub - 1)] + [_rs(rng, 44, B64) + "="]
    lines.append(f"Private-Lines: {priv}")
    lines += [_rs(rng, 64, B64) for _ in range(priv - 1)] + [_rs(rng, 42, B64) + "=="]
    lines.append(f"Private-MAC: {_rs(rng, 64, '0123456789abcdef')}")
    return "\n".join(lines)


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def _jwt(rng: random.Random) -> str:
    def enc(obj: dict[str, object]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    header = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
    claims = {
        "sub": str(rng.randint(10**6, 10**9)),
        "iat": rng.randint(1_600_000_000, 1_800_000_000),
    }
    if rng.random() < 0.5:
        claims["role"] = rng.choice(["service_role", "admin", "user"])
    return f"{enc(header)}.{enc(claims)}.{_rs(rng, 43, B64U)}"


def _generate(rng: random.Random, spec: str) -> str:
    name, _, arg = spec.partition(":")
    n = int(arg) if arg.isdigit() else 0
    simple = {
        "hex": "0123456789abcdef",
        "HEX": "0123456789ABCDEF",
        "an": AN,
        "AN": string.ascii_uppercase + string.digits,
        "lan": string.ascii_lowercase + string.digits,
        "alpha": string.ascii_letters,
        "lower": string.ascii_lowercase,
        "b64": B64,
        "b64u": B64U,
        "dig": string.digits,
        "bech": BECH.upper(),
        "bechl": BECH,
    }
    if name in simple:
        return _rs(rng, n, simple[name])
    if name == "uuid":
        h = _rs(rng, 32, "0123456789abcdef")
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:]}"
    if name == "UUID":
        return _generate(rng, "uuid").upper()
    if name == "pw":
        return _password(rng)
    if name in ("hpw", "phrase", "double", "leet"):
        return _human(rng, name)
    if name == "b64pw":
        return _b64(arg + ":" + _password(rng) if arg else _password(rng))
    if name == "b64of":
        return _b64(arg.encode().decode("unicode_escape"))
    if name == "dockercfg":
        auth = _b64("acme:ghp_" + _rs(rng, 36, AN))
        return _b64(json.dumps({"auths": {"ghcr.io": {"auth": auth}}}))
    if name == "pem":
        return _pem(rng, arg)
    if name == "pemj":
        return _pem(rng, arg).replace("\n", "\\n")
    if name == "pub":
        body = "\n".join(_pem_body(rng, 6))
        return f"-----BEGIN {arg}-----\n{body}\n-----END {arg}-----"
    if name == "b64pem":
        return _b64(_pem(rng, arg) + "\n")
    if name == "b64cert":
        body = "\n".join(_pem_body(rng, 8))
        return _b64(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    if name == "ppk":
        return _ppk(rng, arg)
    if name == "jwt":
        return _jwt(rng)
    raise ValueError(f"unknown generator «{spec}»")


_GEN = re.compile(r"«([^»]*)»")
_SECRET = re.compile(r"⟦(?:@([\w-]+):)?(.*?)⟧", re.DOTALL)


def _unescape(template: str) -> str:
    """`\\n` -> newline, `\\t` -> tab, `\\\\` -> a backslash: the source stays one line a record."""
    return re.sub(r"\\(\\|n|t)", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m[1]], template)


def expand(template: str, kind: str, rng: random.Random) -> tuple[str, list[dict[str, str]]]:
    """The text of one record and the secrets in it, with every «gen» drawn from `rng`."""
    text = _unescape(_GEN.sub(lambda m: _generate(rng, m[1]).replace("\\", "\\\\"), template))
    secrets: list[dict[str, str]] = []
    parts: list[str] = []
    pos = 0
    for m in _SECRET.finditer(text):
        parts.append(text[pos : m.start()])
        parts.append(m[2])
        secrets.append({"type": m[1] or kind, "value": m[2]})
        pos = m.end()
    parts.append(text[pos:])
    return "".join(parts), secrets


def _source(name: str) -> list[tuple[str, str, str]]:
    rows = []
    for line in (SOURCE / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            kind, context, template = line.split("\t", 2)
            rows.append((kind, context, template))
    return rows


def _random_assignments(rng: random.Random) -> list[tuple[str, str, str]]:
    """The shape the red team measured: unquoted `KEY=value` with a random value, 16-64 long.

    Mixed-case values contain runs like `QmTuvKpa` that a 'looks like a TypeName' rule took
    for code; every one of these is a secret."""
    keys = ["password", "DB_PASSWORD", "API_KEY", "api_key", "AWS_SESSION_TOKEN", "SECRET_KEY",
            "ACCESS_TOKEN", "client_secret", "AUTH_TOKEN", "PRIVATE_KEY"]  # fmt: skip
    rows = []
    for i, key in enumerate(keys):
        for length, alphabet in ((16, "an"), (24, "alpha"), (32, "an"), (48, "alpha"), (64, "an")):
            sep = ["=", "=", ": ", " = "][(i + length) % 4]
            rows.append(("secret-assignment", "env", f"{key}{sep}⟦«{alphabet}:{length}»⟧"))
    rng.shuffle(rows)
    return rows


def _round1() -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for line in (SOURCE / "round1-secrets.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            kind, secret, text = line.split("\t")
            secrets = [{"type": kind, "value": secret}]
            records.append({"label": "secret", "type": kind, "context": "round1",
                            "secrets": secrets, "text": text})  # fmt: skip
    for line in (SOURCE / "round1-benign.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            records.append({"label": "benign", "type": "round1", "context": "round1",
                            "secrets": [], "text": line})  # fmt: skip
    return records


def build() -> dict[str, list[dict[str, object]]]:
    rng = random.Random(SEED)
    groups: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
    for label, rows in (("secret", _source("secrets.txt") + _random_assignments(rng)),
                        ("benign", _source("lookalikes.txt"))):  # fmt: skip
        for kind, context, template in rows:
            text, secrets = expand(template, kind, rng)
            assert (label == "secret") == bool(secrets), template
            for s in secrets:
                assert s["value"] in text and s["value"], template
            groups[(label, kind)].append(
                {"label": label, "type": kind, "context": context, "secrets": secrets, "text": text}
            )
    halves: dict[str, list[dict[str, object]]] = {"tuning": [], "heldout": []}
    _deal(groups, rng, halves, "")
    for i, record in enumerate(_round1()):
        record["id"] = f"r1-{i + 1}"
        halves["tuning"].append(record)
    # Written after the split, to widen what the rules are tuned on: tuning half only.
    extra = random.Random(SEED + 1)
    for label, name in (("secret", "tuning-secrets.txt"), ("benign", "tuning-lookalikes.txt")):
        for i, (kind, context, template) in enumerate(_source(name)):
            text, secrets = expand(template, kind, extra)
            assert (label == "secret") == bool(secrets), template
            record = {"id": f"t{label[0]}-{i + 1}", "label": label, "type": kind}
            halves["tuning"].append(
                {**record, "context": context, "secrets": secrets, "text": text}
            )
    # Session 7: texts written after round 2 but before the rules changed for them, split by
    # the same method (each type shuffled, dealt alternately) with their own seeded generator,
    # so the records above stay byte for byte what they were.
    s7 = random.Random(SEED + 7)
    groups = defaultdict(list)
    for label, name in (("secret", "s7-secrets.txt"), ("benign", "s7-lookalikes.txt")):
        for kind, context, template in _source(name):
            text, secrets = expand(template, kind, s7)
            assert (label == "secret") == bool(secrets), template
            groups[(label, kind)].append(
                {"label": label, "type": kind, "context": context, "secrets": secrets, "text": text}
            )
    _deal(groups, s7, halves, "s7")
    return halves


def _deal(
    groups: dict[tuple[str, str], list[dict[str, object]]],
    rng: random.Random,
    halves: dict[str, list[dict[str, object]]],
    tag: str,
) -> None:
    """The split: within each type, shuffle with the seeded generator and deal alternately
    (first to tuning), so every type is in both halves and nobody chooses which goes where."""
    for (label, kind), records in sorted(groups.items()):
        rng.shuffle(records)
        for i, record in enumerate(records):
            record["id"] = f"{tag}{label[0]}-{kind}-{i + 1}"
            halves["heldout" if i % 2 else "tuning"].append(record)


def main() -> None:
    for half, records in build().items():
        with (HERE / f"{half}.jsonl").open("w", encoding="utf-8") as f:
            for record in records:
                keys = ("id", "label", "type", "context", "secrets", "text")
                f.write(json.dumps({k: record[k] for k in keys}, ensure_ascii=False) + "\n")
        secrets = [r for r in records if r["label"] == "secret"]
        benign = [r for r in records if r["label"] == "benign"]
        types = {r["type"] for r in secrets}
        print(
            f"{half}: {len(secrets)} secret texts ({len(types)} types), {len(benign)} look-alikes"
        )


if __name__ == "__main__":
    main()
