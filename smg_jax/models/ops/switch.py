"""The one switch between the ops' fast paths and their plain references.

Every op in ``smg_jax.models.ops`` reads ``reference_enabled()`` while it is
traced and computes its plain reference (``einsum`` / ``lax``, autodiff
gradients) when it is on, its fast path otherwise. Both compute the same
function; the references exist to check the fast paths and to read what an
op computes. A function jitted before the switch changes keeps the path it
was traced with: flip the switch, then trace (``jax.jit`` a fresh function).

``custom_calls_enabled()`` is the other trace-time setting: off, no op lowers
to a custom call (the temporal convolutions stay in XLA), which is what a
program serialised with ``jax.export`` needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_state = {"reference": False, "custom_calls": True}


def use_reference(on: bool) -> None:
    """Sets the switch for the whole process: ``True`` traces every op's plain reference."""
    _state["reference"] = bool(on)


def reference_enabled() -> bool:
    """Whether ops traced now compute their plain reference."""
    return _state["reference"]


@contextlib.contextmanager
def reference(on: bool = True) -> Iterator[None]:
    """``with reference():`` traces the plain references inside the block, then restores."""
    before = _state["reference"]
    _state["reference"] = bool(on)
    try:
        yield
    finally:
        _state["reference"] = before


def custom_calls_enabled() -> bool:
    """Whether ops traced now may lower to custom calls (oneDNN's convolutions)."""
    return _state["custom_calls"]


@contextlib.contextmanager
def without_custom_calls() -> Iterator[None]:
    """Ops traced inside lower to XLA operations only (portable, serialisable programs)."""
    before = _state["custom_calls"]
    _state["custom_calls"] = False
    try:
        yield
    finally:
        _state["custom_calls"] = before
