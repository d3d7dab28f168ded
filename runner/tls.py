"""The TLS context every upstream and token-endpoint client shares."""

from __future__ import annotations

import os
import ssl
from functools import cache

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
