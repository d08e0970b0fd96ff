"""Lookup by name, one way for every table of named things (models, emission networks).

A misspelt name fails loudly: the error lists every valid name and the closest ones.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

Entry = TypeVar("Entry")


def lookup(
    table: Mapping[str, Entry],
    name: str,
    *,
    what: str,
    error: type[Exception] = KeyError,
) -> Entry:
    """``table[name]``, or ``error`` naming ``what`` was asked, the valid names and the closest.

    Args:
      table: ``{name: entry}``.
      name: the name asked for.
      what: what the table holds, for the message (``"model"``, ``"emission model"``).
      error: the caller's exception type.
    """
    if name in table:
        return table[name]
    close = difflib.get_close_matches(str(name), list(table), n=3)
    hint = f" Did you mean {close}?" if close else ""
    raise error(f"Unknown {what} {name!r}; choose from {sorted(table)}.{hint}")
