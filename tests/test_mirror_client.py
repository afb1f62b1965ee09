"""The MuninnDB MCP client against the stand-in server: envelope, errors, safety rules;
and the stand-in's fidelity to the reference (tests/support/muninn_engine.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from engram.errors import ConfigError
from engram.mirror import vault
from engram.mirror.client import (
    MuninnAuthError,
    MuninnClient,
    MuninnProtocolError,
    MuninnToolError,
    MuninnUnavailable,
    decode_envelope,
)
from tests.support.muninn_stub import Fault, MuninnStub
from tests.support.wait import wait_until


@pytest.fixture
def stub() -> Iterator[MuninnStub]:
    with MuninnStub() as s:
        yield s


@pytest.fixture
def client(stub: MuninnStub) -> Iterator[MuninnClient]:
    with MuninnClient(stub.url, timeout=5) as c:
        yield c


def raw(stub: MuninnStub, body: object, token: str | None = None) -> requests.Response:
    s = requests.Session()
    s.trust_env = False
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    with s:
        return s.post(stub.url, data=data, headers=headers, timeout=5)


def test_envelope_is_decoded_twice_and_headers_mark_internal(
    stub: MuninnStub, client: MuninnClient
) -> None:
    got = client.remember("proj", {"content": "We use pnpm", "concept": "pnpm"}, op_id="op-1")
    assert got.id and len(got.id) == 26 and got.hint is None
    reply = raw(
        stub,
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "muninn_read", "arguments": {"vault": "proj", "id": got.id}},
        },
    ).json()
    text = reply["result"]["content"][0]["text"]
    assert json.loads(text)["content"] == "We use pnpm"  # a JSON string inside JSON
    headers = stub.headers[0]
    assert headers["X-Engram-Internal"] == "1" and headers["Content-Type"] == "application/json"


def test_proxy_environment_is_ignored(stub: MuninnStub, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with MuninnClient(stub.url) as c:
        c.ping()


def test_dedup_hint_and_op_id_replay_across_vaults(client: MuninnClient) -> None:
    first = client.remember("a", {"content": "same text"})
    again = client.remember("a", {"content": "same text"})
    assert again.id == first.id and again.hint == "duplicate_content"
    other_vault = client.remember("b", {"content": "same text"})
    assert other_vault.id != first.id  # de-duplication is per vault
    with_op = client.remember("a", {"content": "op text"}, op_id="global-op")
    replay = client.remember("b", {"content": "something else"}, op_id="global-op")
    assert replay.id == with_op.id and replay.idempotent  # receipts are global


def test_soft_delete_restore_and_remember_after_forget(
    client: MuninnClient, stub: MuninnStub
) -> None:
    mid = client.remember("v", {"content": "to forget"}).id or ""
    client.forget("v", mid)
    client.forget("v", mid)  # repeatable
    assert client.read("v", mid)["state"] == "soft_deleted"
    assert client.restore("v", mid) == mid
    with pytest.raises(MuninnToolError, match="not soft-deleted"):
        client.restore("v", mid)
    client.forget("v", mid)
    assert client.remember("v", {"content": "to forget"}).id != mid  # a new id after forget
    with pytest.raises(MuninnToolError) as err:
        client.forget("v", "01NOSUCHID0000000000000000")
    assert err.value.code == -32000 and err.value.not_found


def test_batch_limits_and_per_item_errors(client: MuninnClient, stub: MuninnStub) -> None:
    stub.max_content = 100
    got = client.remember_batch(
        "v", [{"content": "ok one"}, {"content": "x" * 101}, {"content": "ok one"}]
    )
    assert got[0].id and got[1].error and "content exceeds max length" in got[1].error
    assert got[2].id and got[2].id != got[0].id  # no de-duplication inside one batch
    with pytest.raises(MuninnToolError, match=r"memories\[1\]\.content is required") as err:
        client.remember_batch("v", [{"content": "a"}, {"concept": "no content"}])
    assert err.value.code == -32602
    with pytest.raises(MuninnToolError, match="exceeds maximum of 50"):
        client.remember_batch("v", [{"content": f"m{i}"} for i in range(51)])
    with pytest.raises(MuninnToolError, match="content exceeds max length"):
        client.remember("v", {"content": "y" * 101})


def test_recall_null_memories_threshold_and_indexing_delay(
    client: MuninnClient, stub: MuninnStub
) -> None:
    stub.index_delay = 0.3
    client.remember("v", {"content": "the payment service uses idempotency keys"})
    assert client.recall("v", "idempotency keys", threshold=0.1, limit=5) == []  # not indexed
    reply = client.call("muninn_recall", {"vault": "v", "context": ["idempotency"]})
    assert reply["memories"] is None and "hint" in reply  # default threshold 0.5: nothing
    hits = wait_until(  # indexing is asynchronous: poll
        lambda: client.recall("v", "idempotency keys", threshold=0.1, limit=5),
        timeout=5,
        what="MuninnDB's index",
    )
    assert hits and 0 < float(hits[0]["score"]) < 0.4  # type: ignore[arg-type]


def test_errors_are_sorted_into_classes(stub: MuninnStub, client: MuninnClient) -> None:
    stub.fault = lambda tool, args: Fault(rpc_error=(-32602, "invalid params: nope"))
    with pytest.raises(MuninnToolError, match="nope"):
        client.forget("v", "x")
    for body, kind in (
        (b"<html>oops</html>", MuninnProtocolError),
        (b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}', MuninnProtocolError),
        (b'{"jsonrpc":"2.0","result":{}}', MuninnProtocolError),
    ):
        stub.fault = lambda tool, args, body=body: Fault(body=body)
        with pytest.raises(kind):
            client.remember("v", {"content": "c"})
    stub.fault = lambda tool, args: Fault(status=503, body=b"busy")
    with pytest.raises(MuninnUnavailable):
        client.remember("v", {"content": "c"})
    stub.fault = lambda tool, args: Fault(drop=True)
    with pytest.raises(MuninnUnavailable):
        client.remember("v", {"content": "c"})
    stub.fault = None
    with pytest.raises(MuninnToolError, match="invalid vault name") as err:
        client.remember("Not A Vault", {"content": "c"})
    assert err.value.code == -32602
    with pytest.raises(MuninnToolError, match="unknown tool"):
        client.call("muninn_nope", {})
    stub.stop()
    with pytest.raises(MuninnUnavailable, match="unreachable"):
        client.ping()


def test_decode_envelope_rejects_odd_shapes() -> None:
    ok = {"content": [{"type": "text", "text": '{"ok":true}'}]}
    assert decode_envelope("t", ok) == {"ok": True}
    for bad in (
        None,
        {},
        {"content": "x"},
        {"content": [{"type": "image"}]},
        {"content": [{"type": "text", "text": "not json"}]},
        {"content": [{"type": "text", "text": "[1]"}]},
    ):
        with pytest.raises(MuninnProtocolError):
            decode_envelope("t", bad)
    with pytest.raises(MuninnToolError):
        decode_envelope("t", {"isError": True, "content": [{"type": "text", "text": "boom"}]})


def test_401_names_the_token_and_transport_rules(tmp_path: Path) -> None:
    with MuninnStub(token="mdb_" + "a" * 48) as stub:
        with MuninnClient(stub.url) as c, pytest.raises(MuninnAuthError) as err:
            c.remember("v", {"content": "x"})
        assert "MUNINN_TOKEN" in str(err.value) and "~/.muninn/mcp.token" in str(err.value)
        with MuninnClient(stub.url, "mdb_" + "a" * 48) as c:
            c.ping()
        bad = raw(stub, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, token="wrong")
        assert bad.status_code == 401 and bad.json()["error"] == {
            "code": -32001,
            "message": "unauthorized",
        }
        token = "mdb_" + "a" * 48
        arr = raw(stub, [{"jsonrpc": "2.0", "id": 1, "method": "ping"}], token)
        assert arr.json()["error"]["code"] == -32700  # batch arrays are not supported
        note = raw(stub, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token)
        assert note.status_code == 202
        big = raw(stub, b"{" + b" " * (1 << 20) + b"}", token)
        assert big.status_code == 413 and big.json()["error"]["code"] == -32700


def test_vault_names_are_sanitized() -> None:
    assert vault.sanitize_vault("My App.v2") == "my-app-v2"
    assert vault.sanitize_vault("engram-global") == "engram-global"
    assert vault.sanitize_vault("x" * 100) == "x" * 64
    odd = vault.sanitize_vault("日本語")
    assert vault.VAULT_RULE.fullmatch(odd) and odd == vault.sanitize_vault("日本語")
    assert vault.vault_for_scope("/srv/Shop API", None, "engram-global") == "shop-api"
    assert vault.vault_for_scope("/srv/Shop API", "Team Vault", "g") == "team-vault"
    assert vault.vault_for_scope("global", "team", "Engram Global") == "engram-global"


def test_token_file_permissions_warn_once(tmp_path: Path) -> None:
    path = tmp_path / "mcp.token"
    path.write_text("mdb_secret\n")
    os.chmod(path, 0o644)
    warnings: list[str] = []
    assert vault.read_token(None, str(path), warnings.append) == "mdb_secret"
    assert vault.read_token(None, str(path), warnings.append) == "mdb_secret"
    assert len(warnings) == 1 and "chmod 600" in warnings[0]
    assert vault.read_token("from-env", str(path), warnings.append) == "from-env"
    assert vault.read_token(None, str(tmp_path / "missing"), warnings.append) is None


def test_token_is_not_sent_in_clear_to_another_host() -> None:
    warnings: list[str] = []
    vault.check_url("http://127.0.0.1:8750/mcp", True, False)
    vault.check_url("http://localhost:8750/mcp", True, False)
    vault.check_url("http://[::1]:8750/mcp", True, False)
    vault.check_url("https://muninn.example.com/mcp", True, False)
    vault.check_url("http://muninn.example.com/mcp", False, False)  # no token: nothing leaks
    with pytest.raises(ConfigError, match="plain HTTP"):
        vault.check_url("http://10.0.0.5:8750/mcp", True, False)
    vault.check_url("http://10.0.0.6:8750/mcp", True, True, warnings.append)
    vault.check_url("http://10.0.0.6:8750/mcp", True, True, warnings.append)
    assert len(warnings) == 1 and "clear text" in warnings[0]
    with pytest.raises(ConfigError, match="http"):
        vault.check_url("ftp://x/mcp", True, False)
