"""``runner models``: what a running server serves (``--url``), or what the config folder
defines (offline), one model per line, clashes flagged.

Online, the listing comes from the management API, so it includes integrations
POSTed to the server and those stored but not served (with why); offline, only
the files are known, and the output says so.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import httpx

from runner.errors import IntegrationInvalid
from runner.settings import Settings


def list_served(url: str, admin_key: str | None) -> int:
    """Print what the server at ``url`` serves; 1 if it cannot be asked or something clashes."""
    headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
    try:
        response = httpx.get(f"{url.rstrip('/')}/integrations", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        try:
            detail = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            detail = response.text[:300]
        print(f"error: {url} answered {response.status_code}: {detail}", file=sys.stderr)
        return 1
    print(f"# served by {url} (config files, API writes and stored integrations)")
    rows = []
    for item in response.json()["data"]:
        state = item["state"] if item["state"] == "serving" else f"NOT SERVED: {item['reason']}"
        for alias in item["models"]:
            rows.append((alias, item["name"], state))
        if not item["models"]:
            rows.append(("-", item["name"], state))
    return _print(rows)


def list_offline(settings: Settings) -> int:
    """Print what the config folder defines; 1 if a file does not load or something clashes."""
    from runner.integrations.files import file_variables, read_integration

    folder = settings.config_dir.resolve()
    print(f"# config folder {folder}, offline: integrations POSTed to a server are not shown")
    print("# (ask a running server with --url)")
    variables = file_variables(settings)
    status = 0
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            integration = read_integration(path, variables)
        except IntegrationInvalid as exc:
            print(
                f"{path.stem}: not loadable ({len(exc.problems)} problems; run runner validate)",
                file=sys.stderr,
            )
            status = 1
            continue
        rows += [
            (m.caller_alias, path.stem, f"{m.name}\t{','.join(m.parameters)}")
            for m in integration.model_properties
        ]
    return _print(rows) or status


def _print(rows: Iterable[tuple[str, str, str]]) -> int:
    """One line per model: alias, integration, then what is known of it (its state, or
    its upstream name and parameters); a clash is flagged on every line it is part of."""
    rows = list(rows)
    owners: dict[str, set[str]] = {}
    for alias, integration, _ in rows:
        if alias != "-":
            owners.setdefault(alias, set()).add(integration)
    clashes = 0
    for alias, integration, state in rows:
        others = sorted(owners.get(alias, set()) - {integration})
        flag = f"\tCLASH: also {', '.join(others)}" if others else ""
        clashes += bool(others)
        print(f"{alias}\t{integration}\t{state}{flag}")
    return 1 if clashes else 0
