"""`ServerStore` against a stub Qdrant: credentials, timeouts, retries, one-line errors."""

from __future__ import annotations

import socket
import time
import warnings

import pytest
from qdrant_stub import QdrantStub

from dmwan_qdrant.errors import ServerUnavailableError, StoreError, UsageError
from dmwan_qdrant.store import EdgeStore, MemoryStore, ServerStore, open_store


@pytest.fixture
def stub():
    with QdrantStub() as s:
        yield s


def quiet_store(url: str, **kw) -> ServerStore:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # qdrant-client warns about an api key over plain http
        return ServerStore(url, **kw)


def attempts(stub: QdrantStub, path: str = "/collections") -> int:
    """Requests made to ``path`` (listing collections also lists the aliases, once it got the
    collections)."""
    return sum(1 for _, p, _ in stub.requests if p == path)


def one_line(e: BaseException) -> str:
    text = str(e)
    assert "\n" not in text
    return text


def test_api_key_header_is_sent():
    with QdrantStub(api_key="secret") as stub:
        s = quiet_store(stub.url, api_key="secret", retries=0)
        assert s.list_collections() == []
        assert stub.requests[-1][2].get("api-key") == "secret"
        s.close()


@pytest.mark.parametrize("key", ["wrong", None])
def test_refused_credentials_are_not_retried(key):
    with QdrantStub(api_key="secret") as stub:
        s = quiet_store(stub.url, api_key=key, retries=3, backoff=0.01)
        with pytest.raises(ServerUnavailableError) as e:
            s.list_collections()
        assert "credentials" in one_line(e.value) and "401" in str(e.value)
        assert e.value.exit_code == 10
        assert attempts(stub) == 1


def test_slow_response_times_out(stub):
    s = ServerStore(stub.url, timeout=1, retries=0)
    stub.faults.append(("delay", 2.5))
    t0 = time.monotonic()
    with pytest.raises(ServerUnavailableError) as e:
        s.list_collections()
    assert time.monotonic() - t0 < 2.4
    assert "no answer within 1 s" in one_line(e.value)


def test_5xx_is_retried_then_succeeds(stub):
    s = ServerStore(stub.url, retries=3, backoff=0.01)
    stub.faults.extend([("status", 503), ("status", 503)])
    assert s.list_collections() == []
    assert attempts(stub) == 3


def test_5xx_that_persists_gives_up_with_the_status(stub):
    s = ServerStore(stub.url, retries=2, backoff=0.01)
    stub.faults.extend([("status", 502)] * 5)
    with pytest.raises(ServerUnavailableError) as e:
        s.list_collections()
    assert "keeps failing with status 502 (3 attempts)" in one_line(e.value)
    assert attempts(stub) == 3


def test_429_honours_retry_after(stub):
    s = ServerStore(stub.url, retries=2, backoff=0.01)
    stub.faults.append(("status", 429, "1"))
    t0 = time.monotonic()
    assert s.list_collections() == []
    assert time.monotonic() - t0 >= 0.9  # waited Retry-After, not the 0.01 s backoff
    assert attempts(stub) == 2


def test_429_without_retry_after_uses_backoff(stub):
    s = ServerStore(stub.url, retries=1, backoff=0.01)
    stub.faults.extend([("status", 429)] * 2)
    with pytest.raises(ServerUnavailableError, match="429"):
        s.list_collections()
    assert attempts(stub) == 2


def test_client_errors_are_not_retried(stub):
    s = ServerStore(stub.url, retries=3, backoff=0.01)
    stub.faults.append(("status", 400))
    with pytest.raises(StoreError, match="rejected") as e:
        s.list_collections()
    assert not isinstance(e.value, ServerUnavailableError)
    assert attempts(stub) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused():
    s = ServerStore(f"http://127.0.0.1:{_free_port()}", retries=1, backoff=0.01)
    with pytest.raises(ServerUnavailableError) as e:
        s.collection_exists("photos")
    msg = one_line(e.value)
    assert "unreachable" in msg and "connection refused" in msg and "(2 attempts)" in msg


def test_https_url_is_honoured(stub):
    s = quiet_store(stub.url.replace("http://", "https://"), api_key="k", retries=0)
    assert s._client._client.rest_uri.startswith("https://")
    with pytest.raises(ServerUnavailableError):  # the stub speaks plain http: TLS fails
        s.list_collections()
    plain = quiet_store(stub.url, api_key="k", retries=0)
    assert plain._client._client.rest_uri.startswith("http://")  # an api key does not force TLS


def test_bad_url():
    with pytest.raises(UsageError):
        ServerStore("ftp://example.org")


def test_factory(monkeypatch, tmp_path, stub):
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.delenv("QDRANT_API_KEY", raising=False)
    monkeypatch.setenv("DMWAN_STORE", str(tmp_path / "env-store"))
    with open_store() as s:
        assert isinstance(s, EdgeStore) and s.path == (tmp_path / "env-store").resolve()
    with open_store(path=tmp_path / "p") as s:
        assert isinstance(s, EdgeStore)
    with open_store(memory=True) as s:
        assert isinstance(s, MemoryStore)
    monkeypatch.setenv("QDRANT_URL", stub.url)
    monkeypatch.setenv("QDRANT_API_KEY", "from-env")
    with pytest.warns(UserWarning):  # api key over http
        s = open_store()
    assert isinstance(s, ServerStore) and s.url == stub.url
    s.list_collections()
    assert stub.requests[-1][2].get("api-key") == "from-env"
    with open_store(path=tmp_path / "p") as s:  # an explicit path beats $QDRANT_URL
        assert isinstance(s, EdgeStore)
    with pytest.raises(UsageError):
        open_store(url=stub.url, path=tmp_path)
