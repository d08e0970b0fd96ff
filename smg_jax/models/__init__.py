"""Model registry: skeleton GCNs by name, and loading of the authors' PyTorch weights.

Every model module ``smg_jax.models.<name>`` defines

* ``build(*, num_classes: int, **overrides) -> flax.linen.Module`` and
* ``from_torch(state_dict: Mapping[str, np.ndarray], *, num_classes: int,
  **overrides) -> (module, variables)``.

Modules take ``x`` of shape ``(N, M, T, V, C)`` (clips, bodies, frames,
joints, channels) and return ``(N, num_classes)`` logits:
``module.apply(variables, x, train=False)``; for training,
``module.apply(variables, x, train=True, mutable=["batch_stats"],
rngs={"dropout": key})``.

Beside the models: ``layers`` (the layers they share and the backbone),
``ops`` (the fast paths, each beside a plain reference), ``convert`` (the
state_dict readers) and ``export`` (``jax.export`` for inference).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax import registry
from smg_jax.graph import Skeleton, get_skeleton

# name -> (module path, one-line description)
MODELS: dict[str, tuple[str, str]] = {
    "stgcn": ("smg_jax.models.stgcn", "ST-GCN (Yan et al., AAAI 2018)"),
    "agcn": ("smg_jax.models.agcn", "2s-AGCN, one stream (Shi et al., CVPR 2019)"),
    "shiftgcn": ("smg_jax.models.shiftgcn", "Shift-GCN (Cheng et al., CVPR 2020)"),
    "gcnnas": ("smg_jax.models.gcnnas", "GCN-NAS, searched model (Peng et al., AAAI 2020)"),
    "msg3d": ("smg_jax.models.msg3d", "MS-G3D (Liu et al., CVPR 2020)"),
    "ctrgcn": ("smg_jax.models.ctrgcn", "CTR-GCN (Chen et al., ICCV 2021)"),
}


class UnknownModelError(KeyError):
    """Raised for a model name that is not in the registry."""


def _load(name: str) -> Any:
    path, _ = registry.lookup(MODELS, name, what="model", error=UnknownModelError)
    return importlib.import_module(path)


def create(name: str, *, num_classes: int, **overrides: Any) -> nn.Module:
    """Builds model ``name`` with the published defaults, changed by ``overrides``.

    Args:
      name: one of ``MODELS``.
      num_classes: size of the classifier (17 for SMG).
      **overrides: constructor fields of the model (graph partition, dropout,
        widths, ``num_joints``, ``dtype`` ...). An unknown field is an error.
    """
    return _load(name).build(num_classes=num_classes, **overrides)


def from_torch(
    name: str,
    state_dict: Mapping[str, np.ndarray],
    *,
    num_classes: int,
    **overrides: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """Maps an authors' PyTorch ``state_dict`` (names -> NumPy arrays) onto our model.

    Returns ``(module, variables)`` ready for ``module.apply(variables, x)``.
    No torch import is needed: pass ``{k: v.numpy() for k, v in
    torch.load(path).items()}`` or arrays read from an ``.npz``.
    """
    return _load(name).from_torch(state_dict, num_classes=num_classes, **overrides)


# Fields that are not ablation knobs: set by the trainer, not by experiment configs.
_RUNTIME_FIELDS = ("parent", "name", "num_classes", "dtype", "param_dtype", "bn_axis_name")


def default_fields(name: str) -> dict[str, Any]:
    """The constructor fields of model ``name`` and their published defaults.

    Experiment configs copy these into their ``model`` section so that every
    knob can be overridden from the command line or a sweep, and a mistyped
    field fails. Runtime fields (``num_classes``, ``dtype``, ...) are left out.
    """
    module = create(name, num_classes=1)
    fields = {}
    for field in dataclasses.fields(module):
        if field.name in _RUNTIME_FIELDS or not field.init:
            continue
        fields[field.name] = getattr(module, field.name)
    return fields


# Plumbing the model modules share: their ``build`` and input checks. It lives here,
# in the package every model module imports first, so nothing here imports a model.


def resolve_skeleton(skeleton: str | Skeleton) -> Skeleton:
    """A ``Skeleton`` given itself or its name (``"kinect_v2"``, alias ``"ntu"``)."""
    return skeleton if isinstance(skeleton, Skeleton) else get_skeleton(skeleton)


def check_overrides(model_name: str, fields: Any, overrides: Mapping[str, Any]) -> None:
    """Raises ``TypeError`` naming the valid fields when an override is unknown."""
    valid = set(fields)
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise TypeError(
            f"{model_name}: unknown constructor field(s) {unknown}; valid fields: {sorted(valid)}."
        )


def build_module(
    cls: type[nn.Module], model_name: str, num_classes: int, overrides: Mapping[str, Any]
) -> nn.Module:
    """``cls(num_classes=..., **overrides)`` after checking every override is a field.

    Lists become tuples so that the module stays hashable (a requirement of
    ``jax.jit`` on bound ``apply`` methods and of Flax's own caching).
    """
    fields = [f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")]
    check_overrides(model_name, [f for f in fields if f != "num_classes"], overrides)
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return cls(num_classes=num_classes, **fixed)


def check_input(
    model_name: str, x: Any, num_joints: int, in_channels: int, num_persons: int | None = None
) -> None:
    """Raises ``ValueError`` naming the expected layout when ``x`` does not fit the model."""
    bodies = "M" if num_persons is None else f"M={num_persons}"
    if (
        x.ndim != 5
        or x.shape[3] != num_joints
        or x.shape[4] != in_channels
        or (num_persons is not None and x.shape[1] != num_persons)
    ):
        raise ValueError(
            f"{model_name}: expected x of shape (N, {bodies}, T, V={num_joints}, C={in_channels}) "
            f"(clips, bodies, frames, joints, channels), got {tuple(x.shape)}. The number of "
            "bodies is the model's num_persons field."
        )


def example_input_for(module: nn.Module) -> jax.ShapeDtypeStruct:
    """An abstract ``(1, M, 16, V, C)`` input for ``convert.check_variables``."""
    v = resolve_skeleton(module.skeleton).num_joints
    shape = (1, module.num_persons, 16, v, module.in_channels)
    return jax.ShapeDtypeStruct(shape, jnp.float32)
