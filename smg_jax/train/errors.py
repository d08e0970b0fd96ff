"""The error a config that cannot run raises (shared by the loop and its helpers)."""

from __future__ import annotations


class ConfigError(ValueError):
    """The config cannot run as written (the message says which field and why)."""
