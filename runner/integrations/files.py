"""Reading integration files: the config folder at start, and files for ``runner validate``.

Files may reference environment variables as ``${NAME}`` or ``${NAME:-default}``
in any string, so secrets can stay out of the files themselves. Only files get
this: a body POSTed over HTTP is taken literally, so no caller can read the
server's environment through it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from runner.errors import IntegrationInvalid, Problem
from runner.integrations.schema import Integration, parse_integration
from runner.json_body import decode_json
from runner.settings import Settings

log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def file_variables(settings: Settings) -> dict[str, str]:
    """The environment, plus the runner's effective host and port (which CLI flags may set)."""
    return {**os.environ, "RUNNER_HOST": settings.host, "RUNNER_PORT": str(settings.port)}


def read_integration(path: Path, variables: Mapping[str, str]) -> Integration:
    """Parse one integration file; IntegrationInvalid lists what is wrong with it."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise IntegrationInvalid([Problem("", f"cannot read {path}: {exc.strerror}")]) from None
    problems: list[Problem] = []
    data = _expand(decode_json(text), variables, "", problems)
    if problems:
        raise IntegrationInvalid(problems)
    return parse_integration(data)


def _expand(value: object, variables: Mapping[str, str], where: str, problems: list[Problem]):
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in variables:
                return variables[name]
            if default is not None:
                return default
            problems.append(
                Problem(
                    where,
                    f"environment variable {name} is not set; set it or write ${{{name}:-default}}",
                )
            )
            return match.group(0)

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, dict):
        return {
            k: _expand(v, variables, f"{where}.{k}" if where else k, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand(v, variables, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    return value


def config_files(directory: Path) -> list[Path]:
    """The integration files in the config folder, in the order they are loaded."""
    if not directory.is_dir():
        log.warning("config folder %s does not exist; no file-managed integrations", directory)
        return []
    return sorted(directory.glob("*.json"))
