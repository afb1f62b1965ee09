"""The redactor's rules one by one: headers, PEM blocks, URLs, assignments, JSON, the API.

The labelled corpus and the issue's formats and shapes are in tests/test_redact.py. Every key
here is random and fake: right prefix, charset and length, never a real (or leaked) key.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import itertools
import random
import string

import pytest

from engram.redact import (
    REDACTION_TYPES,
    Finding,
    find_secrets,
    is_placeholder,
    is_secret_key,
    redact,
    redact_json,
    redact_with_findings,
)

# Fake keys for unit tests, built from fixed random strings (not real, not from any leak).
_R = random.Random(4242)
_AN = string.ascii_letters + string.digits


def _rs(n: int, alphabet: str = _AN) -> str:
    return "".join(_R.choice(alphabet) for _ in range(n))


ANTHROPIC = "sk-ant-api03-" + _rs(93, _AN + "-_") + "AA"
GITHUB = "ghp_" + _rs(36)
BEARER = _rs(40, _AN + "-_")
PASSWORD = _rs(12) + "#42"


# -- API ---------------------------------------------------------------------------------


ROUND1_TYPES = {
    "anthropic", "openai", "aws-access-key", "aws-secret-key", "github", "gitlab", "slack",
    "slack-webhook", "stripe", "google", "jwt", "private-key", "bearer", "basic-auth",
    "url-credentials", "secret-assignment", "npm", "huggingface", "sendgrid", "twilio", "azure",
}  # fmt: skip


def test_redaction_types() -> None:
    """The types are a contract (`[REDACTED:<type>]`): round 1's stay, the new ones add."""
    assert isinstance(REDACTION_TYPES, frozenset)
    assert ROUND1_TYPES <= REDACTION_TYPES
    assert {"pypi", "vault", "digitalocean", "kubernetes-secret", "azure-ad"} <= REDACTION_TYPES
    assert all(t == t.lower() and " " not in t for t in REDACTION_TYPES)


def test_finding_is_frozen_and_holds_no_value() -> None:
    text = f"key={ANTHROPIC}"
    (finding,) = find_secrets(text)
    assert finding == Finding("anthropic", 4, len(text))
    assert {f.name for f in dataclasses.fields(Finding)} == {"type", "start", "end"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.start = 0  # type: ignore[misc]


def test_finding_positions_are_in_the_original_text() -> None:
    text = (
        f"export GITHUB_TOKEN={GITHUB}\n"
        f"curl -H 'Authorization: Bearer {BEARER}' https://api.example.com\n"
        f"DATABASE_URL=postgres://app:{PASSWORD}@db:5432/app # {ANTHROPIC}\n"
    )
    out, findings = redact_with_findings(text)
    assert [(f.type, text[f.start : f.end]) for f in findings] == [
        ("github", GITHUB),
        ("bearer", BEARER),
        ("url-credentials", PASSWORD),
        ("anthropic", ANTHROPIC),
    ]
    assert find_secrets(text) == findings
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))
    assert out.count("[REDACTED:") == 4


def test_nothing_to_redact_returns_the_same_text() -> None:
    text = "def add(a: int, b: int) -> int:\n    return a + b\n"
    assert redact_with_findings(text) == (text, [])


def test_typed_by_the_token_inside_a_context_rule() -> None:
    assert redact(f'api_key="{ANTHROPIC}"') == 'api_key="[REDACTED:anthropic]"'
    assert redact(f"Authorization: Bearer {GITHUB}") == "Authorization: Bearer [REDACTED:github]"
    assert (
        redact(f"https://x:{GITHUB}@github.com/a/b") == "https://x:[REDACTED:github]@github.com/a/b"
    )


def test_json_escaped_newline_is_a_boundary() -> None:
    """In a captured body a key often follows a literal `\\n` escape, not a real newline."""
    text = f'{{"content": "line one\\n{ANTHROPIC}\\nDB_PASSWORD={PASSWORD}\\n"}}'
    out = redact(text)
    assert out.startswith('{"content": "line one\\n[REDACTED:anthropic]\\nDB_PASSWORD=[REDACTED:')
    assert PASSWORD not in out


def test_secret_between_key_and_value_is_found() -> None:
    """Found by hypothesis: the region a context rule skips (key, separator) is scanned too."""
    aws = "AKIA" + _rs(16, string.ascii_uppercase + string.digits)
    out = redact(f"DB_PASSWORD: {aws} = {PASSWORD}")
    assert aws not in out
    assert PASSWORD not in out


def test_type_annotated_assignment() -> None:
    text = f'    SECRET_KEY: str = "{PASSWORD}"\n    api_key: str | None = "{PASSWORD}"'
    assert PASSWORD not in redact(text)


def test_redaction_is_a_fixpoint() -> None:
    """Found by hypothesis: redacting a token changed how the key before it parsed, so a second
    pass found more. The output is now rescanned until clean, in original coordinates."""
    aws = "AKIA" + _rs(16, string.ascii_uppercase + string.digits)
    text = f"private_key: PKCS7Private | {aws}=KeyTypes,"
    out, findings = redact_with_findings(text)
    assert redact(out) == out
    assert [text[f.start : f.end] for f in findings] == [aws]  # PKCS7Private reads as a type


@pytest.mark.parametrize(
    "text",
    [
        "[REDACTED:openai]",
        'api_key = "[REDACTED:secret-assignment]"',
        "Authorization: Bearer [REDACTED:bearer]",
        "postgres://u:[REDACTED:url-credentials]@h/db",
        f"mixed {ANTHROPIC} and [REDACTED:github] and password={PASSWORD}",
    ],
)
def test_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


# -- headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {BEARER}", "Authorization: Bearer [REDACTED:bearer]"),
        (f"authorization: bearer {BEARER}", "authorization: bearer [REDACTED:bearer]"),
        (
            f'{{"Authorization": "Bearer {BEARER}"}}',
            '{"Authorization": "Bearer [REDACTED:bearer]"}',
        ),
        (f"-H 'Authorization:Bearer {BEARER}'", "-H 'Authorization:Bearer [REDACTED:bearer]'"),
        (f"Proxy-Authorization: Bearer {BEARER}", "Proxy-Authorization: Bearer [REDACTED:bearer]"),
        (f"Authorization: Token {BEARER}", "Authorization: Token [REDACTED:bearer]"),
        (f"Authorization: {BEARER}", "Authorization: [REDACTED:bearer]"),
        (f"HTTP_AUTHORIZATION=Bearer {BEARER}", "HTTP_AUTHORIZATION=Bearer [REDACTED:bearer]"),
    ],
)
def test_authorization_bearer_keeps_the_scheme(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_authorization_basic() -> None:
    cred = base64.b64encode(f"deploy:{PASSWORD}".encode()).decode()
    assert redact(f"Authorization: Basic {cred}") == "Authorization: Basic [REDACTED:basic-auth]"
    assert (
        redact(f'"authorization": "basic {cred}"')
        == '"authorization": "basic [REDACTED:basic-auth]"'
    )
    # Outside a header, a Basic credential is known by what it decodes to.
    assert redact(f"sent Basic {cred} upstream") == "sent Basic [REDACTED:basic-auth] upstream"


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer $TOKEN",
        "Authorization: Bearer ${GITHUB_TOKEN}",
        "Authorization: Bearer <token>",
        "Authorization: Bearer YOUR_TOKEN_HERE",
        'headers["Authorization"] = f"Bearer {token}"',
        "Basic authentication sends base64(user:password) on every request.",
        "Bearer authentication (token authentication) is an HTTP scheme.",
        "authorization = request.headers.get('Authorization')",
        'WWW-Authenticate: Basic realm="staging"',
        # base64 of `user:pass`, a textbook example
        "Authorization: Basic dXNlcjpwYXNz",
    ],
)
def test_authorization_placeholders_and_prose_untouched(text: str) -> None:
    assert redact(text) == text


# -- PEM ---------------------------------------------------------------------------------


def _pem(kind: str, header: str = "") -> str:
    body = "\n".join(_rs(64, _AN + "+/") for _ in range(8)) + "\n" + _rs(30, _AN + "+/") + "=="
    return f"-----BEGIN {kind}-----\n{header}{body}\n-----END {kind}-----"


@pytest.mark.parametrize(
    "kind",
    ["RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY", "DSA PRIVATE KEY",
     "ENCRYPTED PRIVATE KEY", "PGP PRIVATE KEY BLOCK"],
)  # fmt: skip
def test_pem_block_is_redacted_whole(kind: str) -> None:
    header = "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0A1B2C3D4E5F60718293A4B5C6D7E8F9\n\n"
    block = _pem(kind, header if kind.startswith("ENC") else "")
    text = f"$ cat key.pem\n{block}\n$ echo done\n"
    assert redact(text) == "$ cat key.pem\n[REDACTED:private-key]\n$ echo done\n"
    # The same block JSON-escaped, as it sits in a captured request body.
    escaped = block.replace("\n", "\\n")
    assert redact(f'{{"content": "{escaped}\\n"}}') == '{"content": "[REDACTED:private-key]\\n"}'


def test_pem_cut_off_before_end_still_loses_its_body() -> None:
    block = _pem("RSA PRIVATE KEY")
    head = "\n".join(block.splitlines()[:5])
    out = redact(f"$ head -5 id_rsa\n{head}\nand that is all I saw")
    assert out == "$ head -5 id_rsa\n[REDACTED:private-key]\nand that is all I saw"


def test_public_material_and_bare_headers_untouched() -> None:
    for text in [
        _pem("PUBLIC KEY"),
        _pem("CERTIFICATE"),
        'PEM_HEADER = "-----BEGIN RSA PRIVATE KEY-----"',
        "if line == '-----BEGIN OPENSSH PRIVATE KEY-----':\n    in_key = True",
    ]:
        assert redact(text) == text


# -- URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgres://app_user:{}@db.internal:5432/app",
        "postgresql+psycopg2://app:{}@10.0.0.5/orders?sslmode=require",
        "mysql://root:{}@127.0.0.1:3306/shop",
        "mongodb+srv://admin:{}@cluster0.ab1cd.mongodb.net/test?retryWrites=true",
        "redis://:{}@cache:6379/0",
        "amqp://celery:{}@rabbitmq:5672//",
        "https://deploy:{}@nexus.example.com/repository/pypi/simple",
    ],
)
def test_url_credentials_keep_scheme_user_and_host(url: str) -> None:
    assert redact(url.format(PASSWORD)) == url.format("[REDACTED:url-credentials]")


def test_token_as_url_user() -> None:
    assert (
        redact(f"https://{GITHUB}@github.com/a/b.git")
        == "https://[REDACTED:github]@github.com/a/b.git"
    )
    out = redact(f"https://{GITHUB}:{PASSWORD}@github.com/a/b.git")
    assert out == "https://[REDACTED:github]:[REDACTED:url-credentials]@github.com/a/b.git"


def test_url_password_containing_at_sign() -> None:
    text = f"postgres://app:p@{PASSWORD}@db.example.com/app"
    assert redact(text) == "postgres://app:[REDACTED:url-credentials]@db.example.com/app"


def test_slack_webhook_keeps_the_host() -> None:
    path = f"T{_rs(10, string.ascii_uppercase)}/B{_rs(10, string.ascii_uppercase)}/{_rs(24)}"
    text = f"POST https://hooks.slack.com/services/{path} 200"
    assert redact(text) == "POST https://hooks.slack.com/services/[REDACTED:slack-webhook] 200"


# -- assignments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "DB_PASSWORD={}",
        "export GITHUB_PAT='{}'",
        "password: {}",
        '"client_secret": "{}"',
        "SECRET_KEY = '{}'",
        "--password={}",
        "--api-key {}",
        'api_key := "{}"',
        "'passwd' => '{}',",
        "User Id=sa;Pwd={};",
        "<password>{}</password>",
        "x-api-key: {}",
        "access_token={}&expires_in=3600",
    ],
)
def test_secret_assignment_forms(template: str) -> None:
    value = "ghp_" + _rs(36) if "GITHUB" in template else PASSWORD
    out = redact(template.format(value))
    assert value not in out
    assert "[REDACTED:" in out


@pytest.mark.parametrize(
    "text",
    [
        "token_count = 5",
        "max_tokens: 1024",
        "tokenizer = load_tokenizer()",
        "password: str",
        "password: str = Field(min_length=12)",
        "def get_secret(name): ...",
        "secret = get_secret(name)",
        "password = password",
        "token=token,",
        "api_key = os.environ['API_KEY']",
        "api_key: process.env.OPENAI_API_KEY",
        "reset your password here",
        "password = None",
        "is_secret = True",
        "token_type: bearer",
        "PASSWORD_MIN_LENGTH=8",
        "changeme",
        "password: changeme",
        "secret: ****",
        "API_KEY=<your-api-key>",
    ],
)
def test_code_and_prose_untouched(text: str) -> None:
    assert redact(text) == text


# -- redact_json -------------------------------------------------------------------------


def test_redact_json_walks_nested_structures_without_mutating() -> None:
    doc = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": True,
        "api_key": "q8XvN2rT5kLw9Zp3",
        "messages": [
            {"role": "user", "content": f"my key is {ANTHROPIC}"},
            {"role": "user", "content": [{"type": "text", "text": f"DB_PASSWORD={PASSWORD}"}]},
        ],
        "config": {
            "db": {"password": PASSWORD, "port": 5432, "host": "db"},
            "token": "",
            "secret": "your-secret-here",
            "passwd": True,
            "auth_token": None,
            "credentials": {"user": "svc", "password": "hunter42!x"},
            "pairs": ("plain", f"{GITHUB}"),
        },
    }
    before = copy.deepcopy(doc)
    out = redact_json(doc)
    assert doc == before
    assert out is not doc
    assert out["api_key"] == "[REDACTED:secret-assignment]"
    assert out["model"] == "claude-sonnet-4-5"
    assert out["max_tokens"] == 1024
    assert out["stream"] is True
    assert out["messages"][0]["content"] == "my key is [REDACTED:anthropic]"
    assert out["messages"][1]["content"][0]["text"] == "DB_PASSWORD=[REDACTED:secret-assignment]"
    cfg = out["config"]
    assert cfg["db"] == {"password": "[REDACTED:secret-assignment]", "port": 5432, "host": "db"}
    assert cfg["token"] == ""
    assert cfg["secret"] == "your-secret-here"
    assert cfg["passwd"] is True
    assert cfg["auth_token"] is None
    assert cfg["credentials"]["password"] == "[REDACTED:secret-assignment]"
    assert cfg["pairs"] == ("plain", "[REDACTED:github]")
    assert redact_json(out) == out


def test_redact_json_keeps_non_secrets_under_secret_names() -> None:
    doc = {
        "password": "Password",
        "token": "Token",
        "api_key": "OPENAI_API_KEY",
        "secret": "short",
        "token_type": "bearer",
        "max_tokens": 100,
        "tokenizer": "cl100k_base",
        "upgrade_token": "upgrades",
    }
    assert redact_json(doc) == doc


@pytest.mark.parametrize(
    ("name", "secret"),
    [("DB_PASSWORD", True), ("apiKey", True), ("X-API-KEY", True), ("client_secret", True),
     ("GITHUB_TOKEN", True), ("credentials", True), ("_auth", True), ("token_type", False),
     ("max_tokens", False), ("tokenizer", False), ("secret_name", False), ("oauth", False),
     ("password_hint", False), ("key", False)],
)  # fmt: skip
def test_is_secret_key(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [("your-key-here", True), ("<your-api-key>", True), ("${API_KEY}", True), ("$API_KEY", True),
     ("xxxxxxxx", True), ("****", True), ("changeme", True), ("AKIAIOSFODNN7EXAMPLE", True),
     ("[REDACTED:openai]", True), ("{{ token }}", True), (PASSWORD, False), (GITHUB, False)],
)  # fmt: skip
def test_is_placeholder(value: str, placeholder: bool) -> None:
    assert is_placeholder(value) is placeholder


# -- found after the held-out measurement (see docs/privacy.md, "Measured") -----------------


def test_kubernetes_secret_placeholders_are_kept() -> None:
    text = "kind: Secret\nstringData:\n  password: <set-me>\n  token: ${TOKEN}\n  key: abc123"
    assert redact(text) == text


def test_url_password_may_start_with_an_at_sign() -> None:
    text = f"postgres://svc:@{PASSWORD}@db.internal:5432/app"
    assert redact(text) == "postgres://svc:[REDACTED:url-credentials]@db.internal:5432/app"
    assert is_placeholder("@DB_PASSWORD@")  # a build-time substitution stays a placeholder


def test_dotted_passphrase_is_no_type_annotation() -> None:
    assert redact("password: amber.maple.tulip.orbit7") == (
        "password: [REDACTED:secret-assignment]"
    )
    for code in ("password: t.Optional", "token: auth.AccessToken", "key: np.ndarray"):
        assert redact(code) == code


def test_warm_compiles_once() -> None:
    from engram.redact import warm
    from engram.redact.scan import compiled

    warm()
    warm()
    assert compiled.cache_info().currsize == 1


# -- session 7: shapes the analyzer benchmark's writers pasted -------------------------------

_PW = "Quill#" + _rs(5) + "!7k"  # a person's password with symbols inside
_KEY40 = _rs(40)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # keys that shorten the password word, in YAML/INI/env/TOML/JSON, quoted or not
        (f"db_pw: {_PW}", _PW),
        (f"[ftp]\nftp_pw = {_PW}", _PW),
        (f'SMTP_PASS="{_PW}"', _PW),
        (f"passwd={_PW}", _PW),
        (f'{{"pw": "{_PW}"}}', _PW),
        # a person's password under a key that expects a generated value
        (f"JWT_SECRET={_PW}", _PW),
        ('access_token = "olive4olive4"', "olive4olive4"),
        # prose and chat
        ("the wifi password is tangerine-Walrus-418", "tangerine-Walrus-418"),
        ("pw: hunter2hunter2", "hunter2hunter2"),
        ("login is admin / S3cr3t!x", "S3cr3t!x"),
        ("root password? it's Thunder@Cedar!96", "Thunder@Cedar!96"),
        ("**Password:** Bronze#Copper@26", "Bronze#Copper@26"),
        ("the password for the shared mailbox is Plum-Otter-77", "Plum-Otter-77"),
        ("PW for the router: otter7otter7", "otter7otter7"),
        ("ssh in as deploy, password W1nt3r#k, then restart", "W1nt3r#k"),
        ("> what's the db pw?\ngarnet7garnet7 - same as prod", "garnet7garnet7"),
        # keys after a vendor's name or an arrow
        (f"here's my mistral key {_KEY40}", _KEY40),
        (f"use this token for the staging bot — {_KEY40}", _KEY40),
        ("key 1d3aab36e9a305fd9b1035ca5dbe7973 works for me", "1d3aab36e9a305fd9b1035ca5dbe7973"),
        # live/test-mode keys without a rule of their own, UUID tokens, short GitHub tokens
        ("RAZORPAY_KEY_ID=rzp_test_" + "u3dXZ6pvMWNoNx", "rzp_test_u3dXZ6pvMWNoNx"),
        ("using gc_live_" + _KEY40 + " now", "gc_live_" + _KEY40),
        ("MOLLIE_API_KEY=test_" + _KEY40[:30], "test_" + _KEY40[:30]),
        (
            "CODECOV_TOKEN=3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b",
            "3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b",
        ),
        (
            "./codecov -t 3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b -f cov.xml",
            "3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b",
        ),
        ("snyk auth 3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b", "3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b"),
        ("GITHUB_TOKEN=ghp_" + _KEY40[:35], "ghp_" + _KEY40[:35]),
    ],
)
def test_session7_secrets(text: str, value: str) -> None:
    out = redact(text)
    assert value not in out, out
    assert redact(out) == out


@pytest.mark.parametrize(
    "text",
    [
        "pw_min_length: 12\npw_max_age_days: 90",
        "pwd: /home/deploy/app",
        "PASSWORD_FILE=/run/secrets/postgres-passwd",
        "STRIPE_SECRET_KEY=sk_live_...",
        "secret_name: prod/db-credentials",
        "client_secret: user@example.com",
        "the wifi password is on the fridge",
        "login is admin / the usual one",
        "we hash the password argon2id-style",
        "the password is Winter",
        "Token 2a303dbb-2d82-440a-a7ee-51e9309e2af2 revoked by admin",
        "X-Request-Id: 2a303dbb-2d82-440a-a7ee-51e9309e2af2",
        "the cache key 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
        "the sha1 key 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
        '{"key": "9f86d081884c7d659a2feaa0c55ad015"}',
        "NEXT_PUBLIC_STRIPE_KEY=pk_live_8cOxzjSffmxMyBPKFyJPS0xj",
        'OMISE_PUBLIC_KEY = "pkey_test_ucb9xkojtcsy5y18wv9"',
        "tests/test_payments.py::test_live_refund_full_amount PASSED",
        "run_test_suite_20250115_120000",
        "ghs_installation_token_expires_at = now",
        "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "docker run -t ubuntu:24.04 bash",
        "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n    fix token refresh",
        'PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-MAC: 0c6e\nsecret: ""',
    ],
)
def test_session7_lookalikes(text: str) -> None:
    findings = find_secrets(text)
    if text.startswith("PuTTY"):  # the block is a secret; the line after it is not
        assert all(text[f.end :].startswith("\nsecret") for f in findings)
    else:
        assert findings == [], redact(text)
