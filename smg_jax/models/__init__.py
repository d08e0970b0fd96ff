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
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import numpy as np

from smg_jax import registry

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
