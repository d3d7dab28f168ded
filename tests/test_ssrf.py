"""Server-side request forgery: refused addresses, at registration and at request time.

Nothing here sends traffic off this machine. Names are resolved by a test
resolver; where a name resolves to loopback, a listening socket proves that no
connection was attempted (the kernel would have queued one for ``accept``).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fakes import Upstream
from .helpers import Runner, StaticResolver, integration, start_runner


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that counts as 'connected to' if anything reaches it."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.setblocking(False)
        yield sock


def assert_never_connected(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        sock.accept()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest",
        "http://[fd00:ec2::254]/v1",
        "http://[::ffff:169.254.169.254]/v1",
        "http://100.100.100.200/v1",
        "ftp://models.example.com/v1",
    ],
)
def test_refused_literal_endpoints_are_422_at_registration(runner: Runner, upstream: Upstream, url):
    response = runner.put("acme", integration(upstream, endpoint=url))
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "endpoint"
    assert runner.http.get("/integrations/acme").status_code == 404


def test_refused_token_url_is_422_at_registration(runner: Runner, upstream: Upstream):
    spec = integration(
        upstream,
        authentication_type="oauth2",
        oauth2_token_url="http://169.254.169.254/token",
        token=json.dumps({"client_id": "c", "client_secret": "s"}),
    )
    response = runner.put("acme", spec)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "oauth2_token_url"


def test_private_literals_are_refused_only_when_blocking_private_networks(
    config_dir: Path, upstream: Upstream
):
    resolver = StaticResolver({})
    with start_runner(config_dir, resolver, block_private_networks=True) as running:
        response = running.put("acme", integration(upstream))  # upstream is on 127.0.0.1
        assert response.status_code == 422
        assert "RUNNER_BLOCK_PRIVATE_NETWORKS" in response.text
        assert (
            running.put("lan", integration(upstream, endpoint="http://10.1.2.3/v1")).status_code
            == 422
        )


@pytest.mark.parametrize("fast_path", [True, False])
def test_a_name_resolving_to_a_refused_address_is_never_connected(
    config_dir: Path, upstream: Upstream, listener: socket.socket, fast_path: bool
):
    port = listener.getsockname()[1]
    resolver = StaticResolver({"models.internal.test": "127.0.0.1"})
    with start_runner(
        config_dir, resolver, fast_path=fast_path, block_private_networks=True
    ) as running:
        spec = integration(upstream, endpoint=f"http://models.internal.test:{port}/v1")
        assert running.put("acme", spec).status_code == 201  # a name passes registration
        response = running.chat("Model A")
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["code"] == "upstream_address_refused"
        assert "models.internal.test resolves to 127.0.0.1" in error["message"]
    assert "models.internal.test" in resolver.lookups
    assert_never_connected(listener)


def test_a_name_resolving_to_cloud_metadata_is_refused_on_every_path(
    config_dir: Path, upstream: Upstream
):
    resolver = StaticResolver({"metadata.test": "169.254.169.254"})
    with start_runner(config_dir, resolver) as running:
        running.put("acme", integration(upstream, endpoint="http://metadata.test/v1"))
        response = running.chat("Model A")
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_address_refused"
        oauth = integration(
            upstream,
            authentication_type="oauth2",
            oauth2_token_url="http://metadata.test/token",
            token=json.dumps({"client_id": "c", "client_secret": "s"}),
            model_properties=[{"name": "o", "alias": "O"}],
        )
        running.put("oauth", oauth)
        refused = running.chat("O")
        assert refused.status_code == 502
        assert "169.254.169.254" in refused.json()["error"]["message"]
    assert resolver.lookups.count("metadata.test") == 2  # refused once each: never retried


def test_names_resolving_to_allowed_addresses_are_served(config_dir: Path, upstream: Upstream):
    port = upstream.url.split(":")[2].split("/")[0]
    resolver = StaticResolver({"models.test": "127.0.0.1"})
    with start_runner(config_dir, resolver) as running:
        running.put("acme", integration(upstream, endpoint=f"http://models.test:{port}/v1"))
        assert running.chat("Model A").status_code == 200


@pytest.mark.parametrize("fast_path", [True, False])
def test_redirects_are_not_followed(config_dir: Path, upstream: Upstream, fast_path: bool):
    resolver = StaticResolver({})
    with start_runner(config_dir, resolver, fast_path=fast_path) as running:
        running.put("acme", integration(upstream, model_properties=[{"name": "redirect"}]))
        response = running.chat("redirect")
    assert response.status_code == 502
    assert "307" in response.json()["error"]["message"]
    assert len(upstream.received) == 1
