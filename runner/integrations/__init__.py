"""Integrations: their JSON spec and its checks, where they come from (files, the API,
the store, other replicas), and the routing table callers are served from."""
