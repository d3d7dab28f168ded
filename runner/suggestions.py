"""'Did you mean' hints for a name that matched nothing."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest_names(wanted: str, names: Iterable[str], limit: int = 5) -> list[str]:
    """Names that look like ``wanted``, best first, in their real spelling.

    Case is ignored: a caller who types ``SHARED`` for ``shared`` has the right
    name in the wrong case, which difflib alone would rank below a near miss (or
    not at all). Exact case-insensitive matches come first, then difflib's
    closest over the lower-cased names.
    """
    by_lower: dict[str, list[str]] = {}
    for name in names:
        by_lower.setdefault(name.lower(), []).append(name)
    folded = wanted.lower()
    exact = by_lower.pop(folded, [])
    close = difflib.get_close_matches(folded, list(by_lower), n=limit, cutoff=0.5)
    return [*exact, *(name for lower in close for name in by_lower[lower])][:limit]
