"""The HTTP API: the OpenAI-compatible routes, the management routes and health."""

from runner.api.app import create_app

__all__ = ["create_app"]
