"""The network that 2s-AGCN and GCN-NAS share, and its PyTorch checkpoint mapping.

Both models are an input BatchNorm over ``M * V * C`` channels, a stack of
``blocks.AdaptiveUnit`` (adaptive graph convolution + temporal convolution +
residual), pooling over frames, joints and bodies, and the published linear
classifier. They differ only in each unit's fixed graph and in which
data-dependent graphs (branches) it adds: 2s-AGCN uses the same graph and
``("spatial",)`` everywhere, GCN-NAS a searched graph and branch set per
unit. ``agcn.AGCN`` and ``gcnnas.GCNNAS`` hold the fields and choose those;
this module builds the layers, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.models import blocks
from smg_jax.models.convert import StateDictReader, VariableTree, check_variables


class AdaptiveNetworkFields(Protocol):
    """The fields of ``agcn.AGCN`` / ``gcnnas.GCNNAS`` that the shared network reads."""

    num_classes: int
    in_channels: int
    num_persons: int
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    temporal_kernel_size: int
    adaptive: bool
    coff_embedding: int
    residual: bool
    bn_axis_name: str | None
    dtype: Any
    param_dtype: Any


def check_fields(
    model_name: str, module: AdaptiveNetworkFields, num_units: int, unit_field: str | None
) -> None:
    """Refuses per-unit fields of different lengths and an even temporal kernel.

    ``unit_field``: the model's own per-unit field (GCN-NAS's ``cells``), if any.
    """
    lengths = {"channels": len(module.channels), "strides": len(module.strides)}
    if unit_field:
        lengths[unit_field] = num_units
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} ({length})" for name, length in lengths.items())
        raise ValueError(f"{model_name}: {listed} must have equal lengths (one per unit).")
    if module.temporal_kernel_size % 2 != 1:
        raise ValueError(f"{model_name}: temporal_kernel_size must be odd.")


def apply_network(
    module: AdaptiveNetworkFields,
    model_name: str,
    x: jax.Array,
    train: bool,
    graphs: Sequence[jax.Array | np.ndarray],
    branches: Sequence[tuple[str, ...]],
    unit_field: str | None = None,
) -> jax.Array:
    """``x (N, M, T, V, C)`` -> logits ``(N, num_classes)`` (float32).

    Call from inside ``module``'s ``nn.compact`` ``__call__``; the layers are
    created there (``data_bn``, ``l1``..``ln``, ``fc``). ``graphs[i]`` is unit
    ``i``'s fixed ``(K, V, V)`` graph and ``branches[i]`` its data-dependent
    graphs (``blocks.BRANCHES``); ``unit_field`` names the field they come
    from in error messages.
    """
    check_fields(model_name, module, len(graphs), unit_field)
    num_joints = np.shape(graphs[0])[1]
    blocks.check_input(model_name, x, num_joints, module.in_channels, module.num_persons)
    num_clips = x.shape[0]
    dtype = module.dtype or jnp.float32

    x = blocks.DataBatchNorm(
        bodies_in_channels=True,
        bn_axis_name=module.bn_axis_name,
        dtype=dtype,
        param_dtype=module.param_dtype,
        name="data_bn",
    )(x.astype(jnp.float32), train)
    units = zip(module.channels, module.strides, graphs, branches, strict=True)
    for i, (features, stride, graph, unit_branches) in enumerate(units):
        x = blocks.AdaptiveUnit(
            features,
            stride,
            residual=module.residual and i > 0,
            branches=tuple(unit_branches),
            learned_offset=module.adaptive,
            coff_embedding=module.coff_embedding,
            temporal_kernel_size=module.temporal_kernel_size,
            bn_axis_name=module.bn_axis_name,
            dtype=dtype,
            param_dtype=module.param_dtype,
            name=f"l{i + 1}",
        )(x, jnp.asarray(graph), train)

    features = blocks.pool_bodies(x, num_clips)
    module.sow("intermediates", "features", features)
    fc = blocks.published_classifier(
        module.num_classes, module.channels[-1], dtype, module.param_dtype
    )
    return fc(features.astype(dtype)).astype(jnp.float32)


def load_network(
    reader: StateDictReader,
    module: nn.Module,
    model_name: str,
    num_subsets: int,
    branches: Sequence[tuple[str, ...]],
) -> dict[str, Any]:
    """Maps the upstream ``Model`` ``state_dict`` in ``reader`` onto ``module``'s variables.

    ``branches[i]``: unit ``i``'s data-dependent graphs, as ``apply_network``
    builds them. Missing, unused or mis-shaped entries raise ``StateDictError``.
    """
    tree = VariableTree()
    tree.batch_norm("data_bn/bn", reader, "data_bn")
    for i, unit_branches in enumerate(branches):
        name = f"l{i + 1}"
        blocks.load_adaptive_unit(reader, tree, name, name, num_subsets, unit_branches)
    tree.param("fc", reader.linear("fc"))
    reader.finish()

    variables = tree.variables()
    check_variables(model_name, variables, module, blocks.example_input_for(module))
    return jax.tree.map(jnp.asarray, variables)


def from_torch(
    cls: type[nn.Module],
    model_name: str,
    state_dict: Mapping[str, Any],
    num_classes: int,
    overrides: Mapping[str, Any],
    branches_of: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """``(module, variables)`` for ``cls`` from an upstream ``state_dict``.

    ``num_persons`` is read from the input BatchNorm's size when not given;
    ``branches_of(module)`` lists each unit's branches.
    """
    reader = StateDictReader(state_dict, model_name)
    overrides = blocks.infer_num_persons(reader, cls, overrides)
    module = blocks.build_module(cls, model_name, num_classes, overrides)
    num_subsets = module.adjacency().shape[0]
    variables = load_network(reader, module, model_name, num_subsets, branches_of(module))
    return module, variables
