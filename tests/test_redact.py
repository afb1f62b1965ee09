"""The secret redactor against the labelled corpus, issue 14's formats and shapes, look-alikes,
random values, pathological inputs and arbitrary text.

The corpus (tests/data/redaction, built by build.py) was split into a tuning and a held-out
half before any rule changed; the rules were tuned on the tuning half only. Here: every
tuning text by type, and the held-out targets as an assertion. bench/redact.py prints the
table by type for both halves. Every key here is random and fake: right prefix, charset and
length, never a real (or leaked) key.
"""

from __future__ import annotations

import base64
import random
import string
import time
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engram.redact import REDACTION_TYPES, find_secrets, redact, redact_with_findings
from engram.redact.values import reads_as_words
from tests.support.redaction_corpus import HALVES, Record, judge, load, score, totals

CORPUS = {half: load(half) for half in HALVES}
_R = random.Random(1414)
_AN = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"


def _rs(n: int, alphabet: str = _AN) -> str:
    return "".join(_R.choice(alphabet) for _ in range(n))


# -- the corpus ------------------------------------------------------------------------------


def test_corpus_shape_and_split() -> None:
    """≥300 secret texts over ≥60 types and ≥400 look-alikes; both halves hold every new type;
    no text is in both halves."""
    records = CORPUS["tuning"] + CORPUS["heldout"]
    secrets = [r for r in records if r.label == "secret"]
    assert len(secrets) >= 300 and len({r.type for r in secrets}) >= 60
    assert sum(r.label == "benign" for r in records) >= 400
    heldout_types = {r.type for r in CORPUS["heldout"] if r.label == "secret"}
    split = ("s-", "s7s-")  # records dealt to both halves (round 2, session 7)
    new = {r.type for r in CORPUS["tuning"] if r.label == "secret" and r.id.startswith(split)}
    assert heldout_types == new
    assert not {r.text for r in CORPUS["tuning"]} & {r.text for r in CORPUS["heldout"]}
    assert {kind for r in secrets for kind, _ in r.secrets} <= REDACTION_TYPES


def test_heldout_targets() -> None:
    """On the half no rule was tuned on: recall >= 0.99, false positives <= 0.5 %."""
    secrets, benign = (totals(s) for s in score(CORPUS["heldout"], find_secrets))
    assert secrets.recall >= 0.99, f"recall {secrets.recall:.3f}: missed {secrets.missed}"
    assert benign.fp_rate <= 0.005, f"false positives {benign.fp_rate:.2%}: {benign.missed}"


def _by_type(label: str) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = defaultdict(list)
    for record in CORPUS["tuning"]:
        if record.label == label:
            out[record.type].append(record)
    return out


SECRETS_BY_TYPE = _by_type("secret")
LOOKALIKES_BY_KIND = _by_type("benign")


@pytest.mark.parametrize("kind", sorted(SECRETS_BY_TYPE))
def test_each_type_is_found_and_named(kind: str) -> None:
    """Every tuning text of this type loses its secret, under `[REDACTED:<type>]`."""
    for record in SECRETS_BY_TYPE[kind]:
        found, typed = judge(record, find_secrets)
        assert found, f"{record.id}: {redact(record.text)!r}"
        assert typed, f"{record.id}: {[f.type for f in find_secrets(record.text)]}"


@pytest.mark.parametrize("kind", sorted(LOOKALIKES_BY_KIND))
def test_lookalikes_are_kept(kind: str) -> None:
    for record in LOOKALIKES_BY_KIND[kind]:
        assert find_secrets(record.text) == [], f"{record.id}: {redact(record.text)!r}"


def test_corpus_as_one_text() -> None:
    """Neighbouring texts must not hide secrets from each other (one big request body)."""
    records = list(CORPUS["tuning"])
    random.Random(0).shuffle(records)
    out = redact("\n".join(r.text for r in records))
    for record in records:
        if record.label == "secret":
            assert all(value not in out for _, value in record.secrets), record.id
        elif record.type != "round1" or "\n" not in record.text:
            assert record.text in out, record.id


def test_corpus_idempotent() -> None:
    for record in CORPUS["tuning"]:
        once, findings = redact_with_findings(record.text)
        assert redact(once) == once, record.id
        assert all(0 <= f.start < f.end <= len(record.text) for f in findings)


# -- the formats and shapes issue 14 names ---------------------------------------------------

AGE = "AGE-SECRET-KEY-1" + _rs(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L")
SID, TWILIO_TOKEN = "AC" + _rs(32, _HEX), _rs(32, _HEX)
PPK = "\n".join(
    ["PuTTY-User-Key-File-3: ssh-ed25519", "Encryption: none", "Comment: deploy",
     "Public-Lines: 2", _rs(64, _AN + "+/"), _rs(44, _AN + "+/") + "=", "Private-Lines: 1",
     _rs(42, _AN + "+/") + "==", "Private-MAC: " + _rs(64, _HEX)]
)  # fmt: skip
_PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{_rs(64, _AN + '+/')}\n-----END RSA PRIVATE KEY-----\n"
PEM_B64 = base64.b64encode(_PEM.encode()).decode()
K8S_VALUE = base64.b64encode(_rs(20).encode()).decode()
PASSWORD = _rs(14) + "#7"

# (expected type, text, the secret that must vanish)
ISSUE_CASES = [
    ("pypi", "twine upload -u __token__ -p {}", "pypi-AgEIcHlwaS5vcmc" + _rs(120, _AN + "-_")),
    ("vault", "VAULT_TOKEN={}", "hvs." + _rs(91, _AN + "-_")),
    ("digitalocean", "doctl auth init --access-token {}", "dop_v1_" + _rs(64, _HEX)),
    ("shopify", "X-Shopify-Access-Token: {}", "shpat_" + _rs(32, _HEX)),
    ("xai", "client = Client(api_key='{}')", "xai-" + _rs(80)),
    ("groq", "the Groq key {} stopped working", "gsk_" + _rs(52)),
    ("openrouter", "Authorization: Bearer {}", "sk-or-v1-" + _rs(64, _HEX)),
    ("age", "# public key: age1" + _rs(58, "qpzry9x8gf2tvdw0s3jn54khce6mua7l") + "\n{}", AGE),
    ("telegram", "curl https://api.telegram.org/bot{}/getMe", "7" + _rs(9, string.digits)
     + ":AA" + _rs(33, _AN + "-_")),
    ("atlassian", "JIRA_TOKEN={}",
     "ATATT3xFfGF0" + _rs(170, _AN + "-_") + "=" + _rs(8, _HEX.upper())),
    ("linear", "const linear = new LinearClient({{ apiKey: '{}' }})", "lin_api_" + _rs(40)),
    ("sentry", "sentry-cli --auth-token {} releases list",
     "sntrys_eyJpYXQiOjE3" + _rs(120, _AN + "+/") + "_" + _rs(43, _AN + "+/")),
    ("twilio", f"curl https://api.twilio.com/2010-04-01/Accounts.json -u {SID}:{{}}", TWILIO_TOKEN),
    ("twilio", f'client = Client("{SID}", "{{}}")', TWILIO_TOKEN),
    ("aws-secret-key", "aws configure set aws_secret_access_key {}", _rs(40, _AN + "+/")),
    ("secret-assignment", "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: {}",
     PASSWORD),
    ("kubernetes-secret", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n"
     "  password: {}", K8S_VALUE),
    ("kubernetes-secret", "apiVersion: v1\ndata:\n  token: {}\nkind: Secret\nmetadata:\n  name: x",
     K8S_VALUE),
    ("secret-assignment", "mysql -u root -p'{}' shop", PASSWORD),
    ("secret-assignment", "mysqldump -uroot -p{} --all-databases", _rs(16)),
    ("url-credentials", 'db, err := sql.Open("mysql", "app:{}@tcp(db:3306)/orders")', PASSWORD),
    ("basic-auth", "curl -u deploy:{} https://ci.acme.io/job/build", PASSWORD),
    ("secret-assignment", "machine api.acme.io\n  login dev\n  password {}", PASSWORD),
    ("private-key", "{}", PPK),
    ("private-key", "users:\n- name: admin\n  user:\n    client-key-data: {}", PEM_B64),
    ("azure-ad", "AZURE_CLIENT_SECRET={}", _rs(3) + "8Q~" + _rs(34, _AN + "_~.-")),
    ("secret-assignment", "DB_PASSWORD={}", "x9QmTuvKpaRbnW2z"),  # kept by round 1
    ("secret-assignment", "DB_PASSWORD={}", "x9qm7uvkprbnW2za"),
    ("secret-assignment", "AWS_SESSION_TOKEN={}", _rs(64)),
    ("secret-assignment", "- name: API_TOKEN\n  value: {}", _rs(40)),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "template", "secret"), ISSUE_CASES, ids=lambda v: str(v)[:30])
def test_issue_formats_and_shapes(kind: str, template: str, secret: str) -> None:
    text = template.format(secret)
    out, findings = redact_with_findings(text)
    assert secret not in out
    assert any(f.type == kind and f.start <= text.index(secret) < f.end for f in findings), out


ISSUE_LOOKALIKES = [
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-password-Xy12Ab",
    '{"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci/token-a1B2c3"}',
    "DATABASE_URL=postgres://postgres:postgres@localhost:5432/test",
    "      POSTGRES_PASSWORD: postgres",
    'api_key = "abc123"',
    "API_KEY=abc123def456",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + _rs(43, _AN + "+/") + " dev@laptop",
    "-----BEGIN CERTIFICATE-----\n" + _rs(64, _AN + "+/") + "\n-----END CERTIFICATE-----",
    "client-certificate-data: " + base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMII").decode(),
    "OPENAI_API_KEY=sk-proj-****************************Qx7A",
    "Token: ghp_************************************",
    "using key sk-ant-...xTq9 from the environment",
    "commit " + _rs(40, _HEX),
    "request_id=" + "-".join(_rs(n, _HEX) for n in (8, 4, 4, 4, 12)),
    "sha256:" + _rs(64, _HEX),
    "apiVersion: v1\nkind: ConfigMap\ndata:\n  LOG_LEVEL: info\n  REGION: eu-west-1",
    '{"type": "image", "source": {"type": "base64", "data": "' + _rs(400, _AN + "+/") + '"}}',
    "password: SecretStr",
    "token: AccessToken = Depends(get_token)",
]  # fmt: skip


@pytest.mark.parametrize("text", ISSUE_LOOKALIKES, ids=lambda v: v[:40])
def test_issue_lookalikes_are_kept(text: str) -> None:
    assert find_secrets(text) == [], redact(text)


def test_random_assignment_values_are_redacted() -> None:
    """The red team's measure: unquoted `KEY=value` with random values of 16-64 characters
    leaked 10-53 % in round 1. Password keys take any value; API keys and tokens a value
    that does not read as words, which a random one does for ~1 in 10,000 (values.py)."""
    rnd = random.Random(7)
    alphabets = [_AN, string.ascii_letters, string.ascii_lowercase + string.digits, _HEX]
    leaks: dict[str, int] = defaultdict(int)
    for key in ("password", "DB_PASSWORD", "API_KEY", "api_key", "AWS_SESSION_TOKEN",
                "SECRET_KEY", "client_secret", "ACCESS_TOKEN"):  # fmt: skip
        for _ in range(250):
            value = "".join(rnd.choice(rnd.choice(alphabets)) for _ in range(rnd.randint(16, 64)))
            sep = rnd.choice(["=", ": ", " = "])
            if value in redact(f"{key}{sep}{value}"):
                leaks[key] += 1
    assert leaks["password"] == leaks["DB_PASSWORD"] == 0
    assert sum(leaks.values()) <= 2, dict(leaks)


def test_random_strings_do_not_read_as_words() -> None:
    rnd = random.Random(3)
    samples = ["".join(rnd.choice(_AN) for _ in range(16)) for _ in range(5000)]
    assert sum(map(reads_as_words, samples)) <= 5
    names = ["OPENAI_API_KEY", "SecretStr", "hashedPassword", "PKCS7PrivateKeyTypes",
             "correct-horse-battery", "AccessToken", "user_input", "DB_PASSWORD"]  # fmt: skip
    assert all(map(reads_as_words, names))


# -- pathological inputs ---------------------------------------------------------------------

_UNITS = ["k", "sk-", "://", "password=", "token: ", "-----BEGIN PRIVATE KEY-----", "Bearer ",
          "eyJ", "Authorization: ", "a:b@", '"api_key": "', "AKIA", "\\n", "secret_key=a ",
          "kind: Secret\n", "curl -u a:b ", "mysql -p", "@tcp(", "pass ", "key ", "_", "-",
          "PuTTY-User-Key-File-2: x\n", "LS0tLS1CRUdJTi", "1234567890:AA", "- name: TOKEN\n",
          "A", "+/", "x9Qm"]  # fmt: skip


def _cpu_seconds(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        redact(text)
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.parametrize("unit", _UNITS)
def test_pathological_inputs_stay_linear(unit: str) -> None:
    """A unit repeated 4x as often costs ~4x, not 16x: no rule backtracks quadratically.
    (Time is the subject here; the bound is loose, and best-of-3 CPU time filters noise.)"""
    small = unit * (25_000 // len(unit))
    large = unit * (100_000 // len(unit))
    t_small, t_large = _cpu_seconds(small), _cpu_seconds(large)
    assert t_large < 8 * t_small + 0.05, f"{t_small:.3f}s -> {t_large:.3f}s"


def test_large_text_is_scanned_in_one_piece() -> None:
    """5 MB of mixed corpus: every secret goes, in bounded time (behaviour, not a benchmark:
    a regression to rescans or backtracking takes minutes)."""
    unit = "\n".join(r.text for r in CORPUS["tuning"]) + "\n"
    text = unit * (5_000_000 // len(unit) + 1)
    start = time.process_time()
    out = redact(text)
    assert time.process_time() - start < 60
    values = {value for r in CORPUS["tuning"] for _, value in r.secrets}
    assert not any(value in out for value in values)


# -- properties ------------------------------------------------------------------------------

_FRAGMENTS = [r.text for r in CORPUS["tuning"][::7]] + [
    "password", "=", ":", "://", "@", "Bearer ", "Basic ", "sk-", "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----", '"', "\\n", "\n", "[REDACTED:openai]", "Authorization: ",
    "token=", "kind: Secret", "data:\n  a: ", "-p", "-u ", "curl ", "mysql ", "@tcp(",
]  # fmt: skip


@given(st.text())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_never_raises_and_idempotent_on_arbitrary_text(text: str) -> None:
    out, findings = redact_with_findings(text)
    assert all(0 <= f.start < f.end <= len(text) for f in findings)
    assert redact(out) == out


@given(st.lists(st.one_of(st.text(max_size=8), st.sampled_from(_FRAGMENTS)), max_size=12))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@example(parts=["aws_access_key_id = AKIAG8MDH248MZF2B35Q", "@tcp("])  # a marker is no DSN user
def test_idempotent_on_mixed_fragments(parts: list[str]) -> None:
    once = redact("".join(parts))
    assert redact(once) == once


def _fake_key(kind: str, rnd: random.Random) -> str:
    def rs(n: int, alphabet: str = _AN) -> str:
        return "".join(rnd.choice(alphabet) for _ in range(n))

    jwt_head = base64.urlsafe_b64encode(b'{"alg":"RS256"}').decode().rstrip("=")
    return {
        "anthropic": lambda: "sk-ant-api03-" + rs(93, _AN + "-_") + "AA",
        "openai": lambda: "sk-proj-" + rs(120, _AN + "-_"),
        "aws-access-key": lambda: "AKIA" + rs(16, string.ascii_uppercase + string.digits),
        "github": lambda: "gh" + rnd.choice("pousr") + "_" + rs(36),
        "gitlab": lambda: "glpat-" + rs(20, _AN + "-_"),
        "slack": lambda: f"xoxb-{rs(12, string.digits)}-{rs(13, string.digits)}-{rs(24)}",
        "stripe": lambda: rnd.choice(["sk", "rk"]) + rnd.choice(["_live_", "_test_"]) + rs(24),
        "google": lambda: "AIza" + rs(35, _AN + "-_"),
        "jwt": lambda: f"{jwt_head}.{rs(40, _AN + '-_')}.{rs(43, _AN + '-_')}",
        "pypi": lambda: "pypi-AgEIcHlwaS5vcmc" + rs(100, _AN + "-_"),
        "vault": lambda: "hvs." + rs(91, _AN + "-_"),
        "digitalocean": lambda: "dop_v1_" + rs(64, _HEX),
        "groq": lambda: "gsk_" + rs(52),
        "linear": lambda: "lin_api_" + rs(40),
        "npm": lambda: "npm_" + rs(36),
        "twilio": lambda: "AC" + rs(32, _HEX),
    }[kind]()


_SEPARATORS = [" ", "\n", "\t", '"', "'", "=", ": ", "(", ",", "`", "\\n", " | ", "://", "@"]


@given(
    kind=st.sampled_from(["anthropic", "openai", "aws-access-key", "github", "gitlab", "slack",
                          "stripe", "google", "jwt", "pypi", "vault", "digitalocean", "groq",
                          "linear", "npm", "twilio"]),
    seed=st.integers(0, 2**32),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    left=st.sampled_from(_SEPARATORS),
    right=st.sampled_from(_SEPARATORS),
)  # fmt: skip
@settings(max_examples=400)
def test_fake_key_in_random_text_is_always_redacted(
    kind: str, seed: int, before: str, after: str, left: str, right: str
) -> None:
    key = _fake_key(kind, random.Random(seed))
    out = redact(before + left + key + right + after)
    assert key not in out
