"""What ``/metrics`` reports of the runner's state when scraped, read from the integrations
service: problems by kind, the store sync's lag, OAuth2 token fetches; and the spans
the trace exporter sent, failed to send and dropped."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from runner.handlers.loading import events as handler_events
from runner.observe import tracing
from runner.security.credentials import OAuth2Credentials

if TYPE_CHECKING:
    from runner.integrations.service import IntegrationService


def service_state(service: IntegrationService | None) -> dict[str, Any]:
    if service is None:  # scraped before the app started
        return {}
    problems = service.problems.as_json()
    oauth2 = {}
    for registered in service.registry.integrations():
        credentials = registered.client.credentials
        if isinstance(credentials, OAuth2Credentials):
            for outcome, count in credentials.tokens.fetches.items():
                oauth2[(registered.name, outcome)] = count
    synced = service.synced_at
    return {
        "problems": {
            "config_file": len(problems["config_errors"]),
            "not_served": len(problems["store_problems"]),
            "handler": len(problems["handler_errors"]),
        },
        "store_sync_lag_seconds": time.monotonic() - synced if synced is not None else None,
        "oauth2": oauth2,
        "handler_events": dict(handler_events),
        "trace_spans": dict(tracing.exporter.spans) if tracing.exporter is not None else None,
    }
