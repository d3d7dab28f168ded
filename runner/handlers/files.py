"""Loading custom LLM handler classes from Python files in the handler directory.

Each file is imported as a module of its own under a private name (nothing is
added to ``sys.path``), so two files may define classes with the same name and
a handler cannot shadow other code. Every way a file can be unusable — a path
that escapes the directory, a missing file or class, an import that raises, a
constructor that raises (``sys.exit()`` included) — becomes a
:class:`~runner.errors.Problem` naming the ``custom_llm_config`` field to fix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from runner import lazy_litellm
from runner.errors import IntegrationInvalid, Problem
from runner.handlers.threads import Escaped
from runner.integrations.schema import CustomLLMConfig

if TYPE_CHECKING:
    from litellm import CustomLLM

_MODULE_PREFIX = "_runner_custom_llms"

# The last module imported from each file, with the version it was imported at:
# integrations sharing a handler file share its module until the file changes.
_imported: dict[Path, tuple[FileVersion, ModuleType]] = {}


@dataclass(frozen=True)
class FileVersion:
    """What identifies one version of a handler file on disk."""

    mtime_ns: int
    size: int
    inode: int


@dataclass(frozen=True)
class LoadedHandler:
    """A handler instance and the version of its file it was built from."""

    instance: CustomLLM
    path: Path
    version: FileVersion


def handler_path(directory: Path, file_name: str) -> Path:
    """The file ``file_name`` names, refused if it is not directly inside ``directory``."""
    field = "custom_llm_config.file_name"
    if Path(file_name).name != file_name or file_name in (".", ".."):
        raise IntegrationInvalid(
            [
                Problem(
                    field,
                    f"{file_name!r} is a path; give the name of a "
                    f"file directly in {directory} (no folders)",
                )
            ]
        )
    path = directory / file_name
    try:
        resolved = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise IntegrationInvalid(
            [
                Problem(
                    field,
                    f"no file {file_name!r} in the handler "
                    f"directory {directory}; copy or mount it there",
                )
            ]
        ) from None
    if resolved.parent != directory.resolve() or not resolved.is_file():
        raise IntegrationInvalid(
            [
                Problem(
                    field,
                    f"{file_name!r} leads outside the handler "
                    f"directory {directory} or is not a regular file",
                )
            ]
        )
    return path


def file_version(path: Path) -> FileVersion | None:
    """The current version of ``path``, or None if it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return FileVersion(stat.st_mtime_ns, stat.st_size, stat.st_ino)


def directory_listing(directory: Path) -> frozenset[tuple[str, int]]:
    """The handler files present and their modification times, to notice additions."""
    try:
        with os.scandir(directory) as entries:
            return frozenset(
                (e.name, e.stat().st_mtime_ns) for e in entries if e.name.endswith(".py")
            )
    except OSError:
        return frozenset()


def load_handler(directory: Path, config: CustomLLMConfig) -> LoadedHandler:
    """Import the file, find the class, build the instance; blocking, so call it in a thread."""
    path = handler_path(directory, config.file_name)
    version = file_version(path)
    cached = _imported.get(path)
    if cached is not None and version is not None and cached[0] == version:
        module = cached[1]
    else:
        module = _import(path)
        if version is not None:
            _imported[path] = (version, module)
    handler_class = getattr(module, config.class_name, None)
    if not (inspect.isclass(handler_class) and handler_class.__module__ == module.__name__):
        found = [
            n
            for n, c in inspect.getmembers(module, inspect.isclass)
            if c.__module__ == module.__name__
        ]
        listing = f"classes defined there: {', '.join(found)}" if found else "it defines none"
        raise IntegrationInvalid(
            [
                Problem(
                    "custom_llm_config.class_name",
                    f"{config.file_name} has no class {config.class_name!r}; {listing}",
                )
            ]
        )
    if not issubclass(handler_class, lazy_litellm.litellm().CustomLLM):
        raise IntegrationInvalid(
            [
                Problem(
                    "custom_llm_config.class_name",
                    f"{config.class_name} must subclass litellm.CustomLLM",
                )
            ]
        )
    try:
        instance = handler_class(**config.init_kwargs)
    except BaseException as exc:  # sys.exit() and KeyboardInterrupt too: see _import
        raise IntegrationInvalid(
            [
                Problem(
                    "custom_llm_config.init_kwargs",
                    f"{config.class_name}(**init_kwargs) raised {_describe(exc, path)}",
                )
            ]
        ) from None
    return LoadedHandler(instance, path, version)


def _import(path: Path) -> ModuleType:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"{_MODULE_PREFIX}.{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module  # dataclasses, pickling and typing look modules up here
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        # SystemExit and KeyboardInterrupt included: raised by a file's code (this
        # runs in a worker thread, never on the main one), they would otherwise
        # travel back to the event loop and stop the server.
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise IntegrationInvalid(
            [
                Problem(
                    "custom_llm_config.file_name",
                    f"{path.name} failed to import: {_describe(exc, path)}",
                )
            ]
        ) from None
    return module


def _describe(exc: BaseException, path: Path) -> str:
    """The exception, and the line of the handler file it came from."""
    line = exc.lineno if isinstance(exc, SyntaxError) else None
    if line is None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = frames[-1].lineno if frames else None
    where = f" at line {line}" if line else ""
    message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    return f"{type(exc).__name__}: {message}{where}"


def raised_at(exc: BaseException, path: Path) -> str | None:
    """``file.py:line`` of the last frame of ``path`` that ``exc`` passed through, if any."""
    if isinstance(exc, Escaped):
        exc = exc.original
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f"{path.name}:{frames[-1].lineno}" if frames else None
