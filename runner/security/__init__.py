"""Who may call, where the runner may send, and how secrets are kept: API and admin keys,
upstream credentials, the address policy against SSRF, outbound TLS and proxies, secret keys."""
