"""Config fields and values for sweeps: names checked against the config, values parsed by
the field's type, variant names and folders derived from them."""

from __future__ import annotations

import ast
import copy
import difflib
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

# Names a researcher may reach for first -> the config field that holds the knob.
# ST-GCN's paper calls its graph partition "partitioning strategies" (uniform,
# distance, spatial); the model field is `strategy`.
ALIASES: dict[str, str] = {"model.partition": "model.strategy"}


_NONE_WORDS = {"none", "null"}


_TRUE_WORDS = {"true", "yes", "on", "1"}


_FALSE_WORDS = {"false", "no", "off", "0"}


_MAX_FOLDER = 120


class SweepError(ValueError):
    """A sweep that cannot start as written; the message says which field or file, and the fix."""


def field_paths(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every leaf field of ``config`` as a dotted path (``"model.strategy"``)."""
    paths = []
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            paths += field_paths(value, f"{prefix}{key}.")
        else:
            paths.append(f"{prefix}{key}")
    return paths


def _closest_fields(field: str, paths: Sequence[str]) -> list[str]:
    """Real fields that look like ``field``: by whole path, then by last component."""
    candidates = list(paths) + [a for a, target in ALIASES.items() if target in paths]
    close = difflib.get_close_matches(field, candidates, n=4, cutoff=0.6)
    by_leaf: dict[str, list[str]] = {}
    for path in candidates:
        by_leaf.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    section = field.split(".", 1)[0] if "." in field else ""
    for leaf in difflib.get_close_matches(field.rsplit(".", 1)[-1], list(by_leaf), n=4, cutoff=0.6):
        # Same section first: "model.dropuot" means model.dropout, not some other dropout.
        for path in sorted(by_leaf[leaf], key=lambda p: not p.startswith(section + ".")):
            if path not in close:
                close.append(path)
    return [f"{p} (alias of {ALIASES[p]})" if p in ALIASES else p for p in close[:5]]


def resolve_field(config: ml_collections.ConfigDict, field: str) -> str:
    """The config field ``field`` names (aliases resolved).

    Raises:
      SweepError: no such field; the message names the closest real fields.
    """
    name = field.strip()
    canonical = ALIASES.get(name, name)
    paths = field_paths(config)
    if canonical in paths:
        return canonical
    if any(p.startswith(canonical + ".") for p in paths):
        raise SweepError(
            f"{name!r} is a config section, not a field; sweep one of its fields, e.g. "
            f"{[p for p in paths if p.startswith(canonical + '.')][:6]}."
        )
    alias = f" (an alias of {canonical!r})" if canonical != name else ""
    close = _closest_fields(name, paths)
    if close:
        hint = f"Closest real fields: {close}."
    else:
        section = name.split(".", 1)[0]
        same = [p for p in paths if p.startswith(section + ".")]
        sections = sorted({p.split(".", 1)[0] for p in paths})
        hint = (
            f"Fields of {section!r}: {same}."
            if same
            else f"Config sections: {sections}; fields are written section.field."
        )
    raise SweepError(f"Unknown config field {name!r}{alias}. {hint} Nothing was run.")


def field_type(config: ml_collections.ConfigDict, path: str) -> type:
    """The declared type of ``path`` (a placeholder's type when its value is None)."""
    parent_path, _, leaf = path.rpartition(".")
    parent = config
    for key in parent_path.split(".") if parent_path else ():
        parent = parent[key]
    return parent.get_type(leaf)


def split_values(text: str) -> list[str]:
    """Splits ``"a,(1,2),'x,y'"`` at the commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, None, []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    if quote or depth:
        raise SweepError(f"Unbalanced brackets or quotes in {text!r}.")
    return parts


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_value(text: str, kind: type, field: str) -> Any:
    """Parses command-line ``text`` as a value of the field's type ``kind``.

    ``None``/``null`` gives None for any field; bools take true/false/yes/no/1/0;
    tuples take ``(32,64)`` or ``32,64``-free single values (``2`` -> ``(2,)``);
    strings may be quoted.

    Raises:
      SweepError: the text is not a value of that type.
    """
    stripped = text.strip()
    if stripped.lower() in _NONE_WORDS:
        return None
    try:
        if kind is bool:
            if stripped.lower() in _TRUE_WORDS:
                return True
            if stripped.lower() in _FALSE_WORDS:
                return False
            raise ValueError(stripped)
        if kind is int:
            return int(stripped)
        if kind is float:
            return float(stripped)
        if kind is str:
            value = _literal(stripped) if stripped[:1] in "'\"" else stripped
            return str(value)
        if kind in (tuple, list):
            value = _literal(stripped)
            value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
            return kind(value)
        if kind is type(None):  # a field without a declared type that holds None
            return _literal(stripped)
    except ValueError:
        raise SweepError(
            f"{field}={text!r}: not of type {kind.__name__}. Write e.g. "
            f"{ {bool: 'true', int: '3', float: '0.1', tuple: '(32,64)'}.get(kind, 'None') }."
        ) from None
    raise SweepError(f"{field} is of type {kind.__name__}, which a sweep cannot set.")


def coerce_value(value: Any, kind: type, field: str) -> Any:
    """Checks a Python value (from a study file) against the field's type; strings are parsed."""
    if isinstance(value, str) and kind is not str:
        return parse_value(value, kind, field)
    if value is None or kind is type(None):
        return value
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind in (tuple, list) and isinstance(value, (tuple, list)):
        return kind(value)
    if kind is int and isinstance(value, bool):
        raise SweepError(f"{field}={value!r}: a bool where an int is expected.")
    if not isinstance(value, kind):
        raise SweepError(
            f"{field}={value!r} is a {type(value).__name__}; the field holds a {kind.__name__}."
        )
    return value


def parse_sweep(config: ml_collections.ConfigDict, spec: str) -> tuple[str, list[Any]]:
    """``"model.strategy=uniform,spatial"`` -> ``("model.strategy", ["uniform", "spatial"])``."""
    field, sep, values = spec.partition("=")
    if not sep or not field.strip() or not values.strip():
        raise SweepError(f"--sweep={spec!r}: write FIELD=VALUE1,VALUE2,... (one axis per flag).")
    path = resolve_field(config, field)
    kind = field_type(config, path)
    parsed = [parse_value(v, kind, path) for v in split_values(values)]
    return path, parsed


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """A deep copy of ``config`` with ``overrides`` (dotted path -> value) set."""
    copied = copy.deepcopy(config)
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        node = copied
        for key in parents:
            node = node[key]
        try:
            node[leaf] = value
        except (TypeError, ValueError) as err:
            raise SweepError(f"Cannot set {path}={value!r}: {err}") from None
    return copied


def format_value(value: Any) -> str:
    """How a value reads in a variant name: ``uniform``, ``0.1``, ``(8,16)``, ``None``."""
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(format_value(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def folder_name(name: str) -> str:
    """A readable, filesystem-safe folder name for a variant name.

    ``strategy=uniform,preset=authors`` stays as it is; tuples lose their
    brackets (``channels=(8,16)`` -> ``channels=8-16``); spaces become ``_``;
    anything else outside ``[A-Za-z0-9._=,+-]`` becomes ``-``.
    """
    safe = re.sub(r"\(([^()]*)\)", lambda m: m.group(1).replace(",", "-"), name.strip())
    safe = re.sub(r"\s+", "_", safe).replace(",_", ",")
    safe = re.sub(r"[^A-Za-z0-9._=,+-]+", "-", safe).strip("-.") or "variant"
    if len(safe) > _MAX_FOLDER:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        safe = f"{safe[: _MAX_FOLDER - 9]}-{digest}"
    return safe
