"""``runner validate``: integration files checked exactly as a server with the same settings
would check them at start.

Each file goes through the registry a server builds (name, addresses, alias clashes with
the files before it, and, with handlers enabled, importing and constructing the handler
class on the loader's threads with its time limit), so a file that passes here loads
there, and a refusal reads the same as a POST's. Handler files are only imported when
handlers are enabled (``--custom-llms DIR`` or the variables), as on the server; with
them off, a handler integration's other fields are still checked, and a note says the
handler was not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import IntegrationInvalid, Problem
from runner.integrations.checks import check_addresses, check_name
from runner.integrations.files import file_variables, read_integration
from runner.integrations.registry import Origin, Registry
from runner.integrations.schema import Integration
from runner.settings import Settings

HANDLERS_OFF_NOTE = (
    "handler not imported: handlers are off here; pass --custom-llms DIR (or set "
    "CUSTOM_LLMS_ENABLED and CUSTOM_LLMS_DIRECTORY) to import and construct it too"
)


@dataclass
class FileVerdict:
    """What ``runner validate`` says of one file."""

    path: Path
    integration: Integration | None = None
    problems: list[Problem] = field(default_factory=list)
    note: str | None = None


async def validate_files(paths: list[Path], settings: Settings) -> list[FileVerdict]:
    """Each file's verdict, in order; later files are checked against the earlier ones."""
    variables = file_variables(settings)
    registry = Registry(settings)
    claimed: dict[str, str] = {}  # model id -> the file stem that claims it
    verdicts = []
    try:
        for path in paths:
            verdict = FileVerdict(path)
            verdicts.append(verdict)
            try:
                verdict.integration = read_integration(path, variables)
                _check_clashes(path.stem, verdict.integration, claimed)
                if verdict.integration.custom_llm_config and not settings.custom_llms_enabled:
                    check_name(path.stem)
                    check_addresses(verdict.integration, registry.addresses)
                    verdict.note = HANDLERS_OFF_NOTE
                else:
                    await registry.put(path.stem, verdict.integration, Origin("file", str(path)))
            except IntegrationInvalid as exc:
                verdict.problems = exc.problems
                continue
            claimed.update(dict.fromkeys(_model_ids(path.stem, verdict.integration), path.stem))
    finally:
        await registry.aclose()
    return verdicts


def _model_ids(name: str, spec: Integration) -> list[str]:
    return [name, *(m.caller_alias for m in spec.model_properties)]


def _check_clashes(name: str, spec: Integration, claimed: dict[str, str]) -> None:
    """Model ids are global across files, as on the server (a clash there is a 409)."""
    problems = []
    if name in claimed:
        problems.append(Problem("name", f"{name!r} is already a model id in {claimed[name]}.json"))
    for index, model in enumerate(spec.model_properties):
        owner = claimed.get(model.caller_alias)
        if owner is not None:
            problems.append(
                Problem(
                    f"model_properties[{index}].alias",
                    f"{model.caller_alias!r} is already claimed by {owner}.json; aliases are "
                    "unique across integrations, so choose another alias",
                )
            )
    if problems:
        raise IntegrationInvalid(problems, status_code=409)
