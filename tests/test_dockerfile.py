"""What can be checked about the image without a Docker engine.

``tests/test_container.py`` builds and runs the image for real (CI always runs
it); these checks give early warning on a machine without Docker: every file the
Dockerfile copies from the build context exists and is let through by
``.dockerignore`` (which lists what to send, not what to leave out), and local
state never is.
"""

from __future__ import annotations

import fnmatch
import shlex
from pathlib import Path

from .helpers import REPO

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def _context_sources() -> list[str]:
    """The build-context paths of every COPY (those with --from copy between stages)."""
    sources = []
    for keyword, rest in _instructions():
        if keyword in ("COPY", "ADD"):
            words = shlex.split(rest)
            if any(word.startswith("--from") for word in words):
                continue
            *paths, _destination = [word for word in words if not word.startswith("--")]
            sources += paths
    return sources


def _ignored(path: str) -> bool:
    """Docker's rule: the last .dockerignore pattern matching the path or a parent wins."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        choices = {pattern, pattern.removeprefix("**/")}
        for prefix in prefixes:
            candidates = {prefix, prefix.split("/")[-1]} if pattern.startswith("**/") else {prefix}
            if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in choices):
                ignored = not negated
                break
    return ignored


def test_every_copied_path_exists_and_is_in_the_build_context():
    sources = _context_sources()
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert (REPO / source).exists(), f"COPY source {source} is missing"
        files = [REPO / source] if (REPO / source).is_file() else (REPO / source).rglob("*")
        for path in filter(Path.is_file, files):
            relative = path.relative_to(REPO).as_posix()
            if "__pycache__" not in relative:
                assert not _ignored(relative), f"{relative} is copied but .dockerignore drops it"


def test_dockerignore_keeps_local_state_out():
    for junk in (".venv/bin/python", ".git/HEAD", "data/runner.db", "runner/__pycache__/x.pyc"):
        assert _ignored(junk), f"{junk} would be sent to docker build"
