"""The ``runner`` command: serve the API, validate integration files, list models."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from runner.settings import Settings, parse_workers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runner", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the OpenAI-compatible and management API")
    serve.add_argument("--host", help="interface to listen on (default: RUNNER_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: RUNNER_PORT or 8000)")
    serve.add_argument("--config-dir", type=Path, help="integration folder (RUNNER_CONFIG_DIR)")
    serve.add_argument(
        "--custom-llms",
        type=Path,
        metavar="DIR",
        help="enable custom LLM handlers, read from DIR (CUSTOM_LLMS_ENABLED + _DIRECTORY)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        default=None,
        help="serve the built-in echo model at /demo/v1, for config/demo.json (RUNNER_DEMO)",
    )
    serve.add_argument(
        "--workers",
        type=_workers_argument,
        metavar="N",
        help="processes sharing the port; 'auto' is one per core (RUNNER_WORKERS, default 1)",
    )

    validate = commands.add_parser("validate", help="check integration files; exit 1 on problems")
    validate.add_argument("files", nargs="+", type=Path)
    validate.add_argument(
        "--custom-llms",
        type=Path,
        metavar="DIR",
        help="import and construct handlers from DIR, as `runner serve --custom-llms DIR` would",
    )

    models = commands.add_parser(
        "models", help="list the models a running server serves (--url), or the config folder's"
    )
    models.add_argument("--config-dir", type=Path, help="integration folder (RUNNER_CONFIG_DIR)")
    models.add_argument("--url", help="a running runner, such as http://127.0.0.1:8000")
    models.add_argument(
        "--admin-key", help="the server's RUNNER_ADMIN_KEY (default: RUNNER_ADMIN_KEY here)"
    )

    health = commands.add_parser("health", help="exit 0 if the local server answers /health")
    health.add_argument("--port", type=int, help="port (default: RUNNER_PORT or 8000)")
    health.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when the server is up but degraded (config, store or handler problems)",
    )

    commands.add_parser(
        "rotate-key",
        help="re-encrypt stored secrets under the newest key (adds one to the key file "
        "when RUNNER_SECRET_KEY is unset)",
    )
    commands.add_parser("generate-key", help="print a new key for RUNNER_SECRET_KEY")
    hash_key = commands.add_parser(
        "hash-key", help="print the sha256: form of an API key, for RUNNER_API_KEYS"
    )
    hash_key.add_argument("key", help="the key callers will send")

    args = parser.parse_args(argv)
    names = ("host", "port", "config_dir", "workers", "demo")
    overrides = {k: v for k in names if (v := getattr(args, k, None)) is not None}
    if getattr(args, "custom_llms", None):
        overrides.update(custom_llms_enabled=True, custom_llms_directory=args.custom_llms)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"error: {_settings_problems(exc)}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings)
    if args.command == "validate":
        return _validate(args.files, settings)
    if args.command == "health":
        return _health(settings, args.strict)
    if args.command == "rotate-key":
        return asyncio.run(_rotate_key(settings))
    if args.command == "hash-key":
        from runner.security.admission import hash_key

        print(hash_key(args.key))
        return 0
    if args.command == "generate-key":
        from runner.security.secret_keys import generate_key

        print(generate_key())
        return 0
    return _models(settings, args.url, args.admin_key)


def _workers_argument(text: str) -> int:
    """``--workers``: refused by argparse with the same message RUNNER_WORKERS gets."""
    try:
        return parse_workers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _settings_problems(exc: ValidationError) -> str:
    """Each bad setting named as the operator wrote it, without pydantic's boilerplate."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        name = field if field.isupper() else f"RUNNER_{field.upper()}"
        problems.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def _serve(settings: Settings) -> int:
    if settings.workers > 1:
        from runner.workers import serve_workers

        return serve_workers(settings)
    import uvicorn

    from runner.api import create_app
    from runner.logs import logging_config

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=logging_config(settings.log_level, settings.log_format),
        log_level=settings.log_level,
        access_log=False,
    )
    return 0


async def _rotate_key(settings: Settings) -> int:
    from runner.security.secret_keys import (
        KeyConfigError,
        add_key_to_file,
        load_secret_box,
    )
    from runner.store import IntegrationStore
    from runner.store.rotation import rotate_secrets

    if settings.secret_key is None:
        path = add_key_to_file(settings)
        print(f"added a new key to {path}; older keys stay there to read what they sealed")
    try:
        box = load_secret_box(settings)
    except KeyConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    store = await IntegrationStore.open(settings.effective_database_url)
    try:
        result = await rotate_secrets(store, box)
    finally:
        await store.aclose()
    print(
        f"re-encrypted {len(result.rotated)} integration(s) under key id {box.key_id}; "
        f"{len(result.current)} already were"
    )
    if result.failed:
        print(
            f"error: no configured key opens {', '.join(result.failed)}; add the key they were "
            "written with to RUNNER_SECRET_KEY (after the new one) and run again",
            file=sys.stderr,
        )
        return 1
    print("once every runner has restarted with the new key, older keys may be removed")
    return 0


def _health(settings: Settings, strict: bool) -> int:
    """For container health checks: is the server on this machine answering? With
    ``strict``, is everything it was configured with also served?"""
    import httpx

    try:
        response = httpx.get(f"http://127.0.0.1:{settings.port}/health", timeout=4)
    except httpx.HTTPError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(response.text)
    if response.status_code != 200:
        return 1
    if strict and response.json().get("status") != "ok":
        print("degraded: see config_errors, handler_errors and store.problems", file=sys.stderr)
        return 1
    return 0


def _validate(files: list[Path], settings: Settings) -> int:
    from runner.integrations.validation import validate_files

    failed = 0
    for verdict in asyncio.run(validate_files(files, settings)):
        if verdict.problems or verdict.integration is None:
            failed += 1
            print(f"{verdict.path}: invalid")
            for problem in verdict.problems:
                print(f"  - {problem}")
            continue
        aliases = ", ".join(m.caller_alias for m in verdict.integration.model_properties)
        print(f"{verdict.path}: ok ({aliases})")
        if verdict.note:
            print(f"  note: {verdict.note}")
    return 1 if failed else 0


def _models(settings: Settings, url: str | None, admin_key: str | None) -> int:
    from runner.model_listing import list_offline, list_served

    if url is None:
        return list_offline(settings)
    if admin_key is None and settings.admin_key is not None:
        admin_key = settings.admin_key.get_secret_value()
    return list_served(url, admin_key)


if __name__ == "__main__":
    sys.exit(main())
