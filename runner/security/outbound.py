"""How the runner reaches out: the TLS context and the proxies every upstream client shares."""

from __future__ import annotations

import os
import ssl
import urllib.request
from functools import cache
from urllib.parse import urlsplit

import certifi


@cache
def tls_context() -> ssl.SSLContext:
    """Built once: a context costs ~40 ms, which every registration would otherwise pay.

    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` point it at a private CA bundle, for
    models behind internal gateways.
    """
    return ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        capath=os.environ.get("SSL_CERT_DIR"),
    )


def env_proxy(url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY``/``NO_PROXY`` choose for ``url``, as httpx would use."""
    parts = urlsplit(url)
    proxies = _environment_proxies()
    if parts.hostname is None or urllib.request.proxy_bypass_environment(parts.hostname, proxies):
        return None
    return proxies.get(parts.scheme)


@cache
def _environment_proxies() -> dict[str, str]:
    """Read once per process: scanning the environment costs ~0.3 ms, and registering
    thousands of integrations at start would otherwise spend seconds on it."""
    return urllib.request.getproxies_environment()
