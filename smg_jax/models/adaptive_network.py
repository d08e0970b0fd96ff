"""The network that 2s-AGCN and GCN-NAS share: adaptive graph units, by Shi et al. (CVPR 2019).

Both models are an input BatchNorm over ``M * V * C`` channels, a stack of
``AdaptiveUnit`` (adaptive graph convolution + temporal convolution +
residual), pooling over frames, joints and bodies, and the published linear
classifier. They differ only in each unit's fixed graph and in which
data-dependent graphs (branches) it adds: 2s-AGCN uses the same graph and
``("spatial",)`` everywhere, GCN-NAS a searched graph and branch set per
unit. ``agcn.AGCN`` and ``gcnnas.GCNNAS`` hold the fields and choose those;
this module builds the layers, so the two cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.models import build_module, example_input_for
from smg_jax.models.convert import (
    StateDictReader,
    VariableTree,
    check_variables,
    infer_num_persons,
    load_adaptive_unit,
)
from smg_jax.models.layers import (
    Dtype,
    Initializer,
    ParamsOnlyConv,
    TemporalUnit,
    backbone,
    constant,
    graph_conv_output,
    kaiming_fan_out,
    normal,
    residual_path,
    unit_options,
    zeros,
)
from smg_jax.models.ops import joints, temporal_conv

Array = jax.Array


# ---------------------------------------------------------------------------
# The unit.
# ---------------------------------------------------------------------------


class SubsetProjection(nn.Module):
    """``K`` 1x1 convolutions, one per adjacency subset, summed: ``sum_k W_k (x @ A_k) + b_k``.

    Input ``(B, V, T, C)`` and adjacency ``(K|B K, V, W)``, output
    ``(B, W, T, features)``. Kernel ``(K, C, features)``, bias ``(K, features)``
    (the ``K`` PyTorch ``conv_d`` layers side by side), applied after the
    aggregation as published, so the bias does not go through the graph.
    """

    features: int
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = zeros
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, adjacency: Array) -> Array:
        k, c = adjacency.shape[-3], x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (k, c, self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (k, self.features), self.param_dtype)
        dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
        y = joints.graph_project(x.astype(dtype), adjacency.astype(dtype), kernel.astype(dtype))
        return y + bias.sum(0).astype(dtype)


BRANCHES = ("spatial", "temporal", "spatiotemporal")


class AdaptiveGraphConv(nn.Module):
    """``unit_gcn`` of 2s-AGCN, and GCN-NAS's searched variants of it.

    Input ``(B, V, T, C)`` and a fixed ``(K, V, V)`` adjacency ``base``;
    output ``(B, V, T, features)``. For each subset ``k`` the graph is
    ``base_k + B_k + sum(data-dependent graphs)``, with ``B_k`` a learned
    offset (2s-AGCN's ``PA``, initialised to ``1e-6``). Each data-dependent
    graph is ``softmax_v(theta(x)^T phi(x) / (C_e T))`` over the joints ``v``
    it gathers from, with ``theta``/``phi`` embeddings of ``C_e =
    features // coff_embedding`` channels and ``T`` the current number of
    frames, as published. The output is ``BN(sum_k W_k (x @ A_k)) +
    down(x)`` followed by ReLU, with ``BN`` starting at scale ``1e-6``.

    Branches (the kinds of data-dependent graphs):
      * ``"spatial"``: 1x1 embeddings (``conv_a``/``conv_b``; 2s-AGCN's ``C_k``).
      * ``"temporal"``: ``temporal_kernel_size``-frame embeddings
        (``conv_T1``/``conv_T2``; GCN-NAS).
      * ``"spatiotemporal"``: GCN-NAS's ``conv_ST11``/``conv_ST12``. Upstream
        builds ``2K`` convolutions alternating 1 and 9 frames but subset ``k``
        uses entry ``k`` (so kernels 1, 9, 1 for ``K = 3``); the other ``K``
        are constructed, counted and saved, never called. We declare them too
        so that parameter counts and checkpoints match.

    Embedding convolutions of all subsets are stacked into one kernel (one
    matmul or convolution instead of ``K``), each with its published
    ``kaiming_normal(fan_out)`` scale; ``conv_d`` is a ``SubsetProjection``
    with ``normal(0, sqrt(2 / (out * in * K)))`` weights.
    """

    features: int
    branches: tuple[str, ...] = ("spatial",)
    learned_offset: bool = True
    coff_embedding: int = 4
    temporal_kernel_size: int = 9
    bn_axis_name: str | None = None
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    def _embeddings(self, x: Array, k: int) -> dict[str, Array]:
        """The outputs of every embedding convolution the branches call, by name.

        Convolutions with the same number of frames run as one, their kernels
        side by side (e.g. GCN-NAS's ``conv_T1``, ``conv_T2`` and the 9-frame
        ``conv_ST1x``), so each reads ``x`` once and the output is wide enough
        to fill the convolution and matmul tiles of a CPU backend.
        Parameters stay one ``kernel (k, C, O)`` and ``bias (O,)`` per
        published convolution. Spatiotemporal convolutions upstream builds but
        never calls are declared only.
        """
        inter = self.features // self.coff_embedding
        frames = self.temporal_kernel_size
        calls: list[tuple[str, int, int]] = []  # (name, frames, output channels)
        if "spatial" in self.branches:
            calls += [("conv_a", 1, k * inter), ("conv_b", 1, k * inter)]
        if "temporal" in self.branches:
            calls += [("conv_T1", frames, k * inter), ("conv_T2", frames, k * inter)]
        if "spatiotemporal" in self.branches:
            for prefix in ("conv_ST11", "conv_ST12"):
                # conv_ST1x[j] has 1 frame for even j, ``frames`` for odd j; only
                # j < k is called.
                for j in range(2 * k):
                    size = 1 if j % 2 == 0 else frames
                    if j < k:
                        calls.append((f"{prefix}_{j}", size, inter))
                    else:
                        ParamsOnlyConv(
                            x.shape[-1], inter, size, kaiming_fan_out(inter, size),
                            param_dtype=self.param_dtype, name=f"{prefix}_{j}",
                        )()  # fmt: skip
        params = {
            name: ParamsOnlyConv(
                x.shape[-1], out, size, kaiming_fan_out(inter, size),
                param_dtype=self.param_dtype, name=name,
            )()
            for name, size, out in calls
        }  # fmt: skip
        dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
        outputs: dict[str, Array] = {}
        for size in sorted({size for _, size, _ in calls}):
            names = [name for name, frames_of, _ in calls if frames_of == size]
            kernel = jnp.concatenate([params[name][0] for name in names], axis=-1)
            bias = jnp.concatenate([params[name][1] for name in names])
            y = temporal_conv.convolve_frames(
                x.astype(dtype), kernel.astype(dtype), pad=(size - 1) // 2
            )
            y = y + bias.astype(dtype)
            ends = np.cumsum([params[name][1].shape[0] for name in names])[:-1]
            outputs.update(zip(names, jnp.split(y, ends, axis=-1), strict=True))
        return outputs

    @nn.compact
    def __call__(self, x: Array, base: Array, train: bool) -> Array:
        unknown = set(self.branches) - set(BRANCHES)
        if unknown:
            raise ValueError(f"Unknown graph branch(es) {sorted(unknown)}; choose from {BRANCHES}.")
        k = base.shape[0]
        t = x.shape[2]
        inter = self.features // self.coff_embedding
        adjacency = base.astype(jnp.float32)
        if self.learned_offset:
            adjacency = adjacency + self.param(
                "PA", constant(1e-6), base.shape, self.param_dtype
            ).astype(jnp.float32)

        embeddings = self._embeddings(x, k)

        def per_subset(name: str) -> Array:  # (B, V, T, k * inter) -> (B, V, T, k, inter)
            y = embeddings[name]
            return y.reshape(*y.shape[:-1], k, inter)

        pairs = {
            "spatial": lambda: (per_subset("conv_a"), per_subset("conv_b")),
            "temporal": lambda: (per_subset("conv_T1"), per_subset("conv_T2")),
            # One (B, V, T, inter) array per subset (channel slices of the
            # shared convolutions' outputs); each subset's scores on their own.
            "spatiotemporal": lambda: tuple(
                [embeddings[f"{prefix}_{j}"] for j in range(k)]
                for prefix in ("conv_ST11", "conv_ST12")
            ),
        }
        for branch in self.branches:
            theta, phi = pairs[branch]()
            if isinstance(theta, list):
                pairs_k = zip(theta, phi, strict=True)
                per_subset = [jnp.einsum("bvti,bwti->bvw", a, b) for a, b in pairs_k]
                scores = jnp.stack(per_subset, axis=1).astype(jnp.float32)
            else:
                scores = joints.embedding_scores(theta, phi).astype(jnp.float32)
            adjacency = adjacency + jax.nn.softmax(scores / (inter * t), axis=2)

        dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
        y = SubsetProjection(
            self.features,
            kernel_init=normal(0.0, math.sqrt(2.0 / (self.features * x.shape[-1] * k))),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv_d",
        )(x.astype(dtype), adjacency.astype(dtype))
        return graph_conv_output(y, x, train, self.bn_axis_name, self.dtype, self.param_dtype)


class AdaptiveUnit(nn.Module):
    """``TCN_GCN_unit`` of 2s-AGCN / GCN-NAS: ``ReLU(tcn(gcn(x)) + residual(x))``.

    ``gcn1`` is an ``AdaptiveGraphConv``, ``tcn1`` a ``TemporalUnit`` with the
    block's stride; the residual is absent (first block), the identity, or a
    strided 1x1 ``TemporalUnit``. Input ``(B, V, T, C)``, output
    ``(B, V, floor((T - 1) / stride) + 1, features)``.
    """

    features: int
    stride: int = 1
    residual: bool = True
    branches: tuple[str, ...] = ("spatial",)
    learned_offset: bool = True
    coff_embedding: int = 4
    temporal_kernel_size: int = 9
    bn_axis_name: str | None = None
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, base: Array, train: bool) -> Array:
        common = dict(
            bn_axis_name=self.bn_axis_name, dtype=self.dtype, param_dtype=self.param_dtype
        )
        res = residual_path(x, self.features, self.stride, self.residual, train, **common)
        y = AdaptiveGraphConv(
            self.features,
            self.branches,
            self.learned_offset,
            self.coff_embedding,
            self.temporal_kernel_size,
            name="gcn1",
            **common,
        )(x, base, train)
        y = TemporalUnit(
            self.features, self.temporal_kernel_size, self.stride, name="tcn1", **common
        )(y, train)
        return nn.relu(y + res)


# ---------------------------------------------------------------------------
# The network and its weights.
# ---------------------------------------------------------------------------


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
    graphs (``BRANCHES``); ``unit_field`` names the field they come
    from in error messages.
    """
    check_fields(model_name, module, len(graphs), unit_field)

    def units(x: Array) -> Array:
        layers = zip(module.channels, module.strides, graphs, branches, strict=True)
        for i, (features, stride, graph, unit_branches) in enumerate(layers):
            x = AdaptiveUnit(
                features,
                stride,
                residual=module.residual and i > 0,
                branches=tuple(unit_branches),
                learned_offset=module.adaptive,
                coff_embedding=module.coff_embedding,
                temporal_kernel_size=module.temporal_kernel_size,
                **unit_options(module),
                name=f"l{i + 1}",
            )(x, jnp.asarray(graph), train)
        return x

    return backbone(
        module, model_name, x, train, units,
        num_joints=np.shape(graphs[0])[1], num_persons=module.num_persons,
    )  # fmt: skip


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
        load_adaptive_unit(reader, tree, name, name, num_subsets, unit_branches)
    tree.param("fc", reader.linear("fc"))
    reader.finish()

    variables = tree.variables()
    check_variables(model_name, variables, module, example_input_for(module))
    return jax.tree.map(jnp.asarray, variables)


def from_torch(
    cls: type[nn.Module],
    model_name: str,
    state_dict: Mapping[str, Any],
    num_classes: int,
    overrides: Mapping[str, Any],
) -> tuple[nn.Module, dict[str, Any]]:
    """``(module, variables)`` for ``cls`` from an upstream ``state_dict``.

    ``num_persons`` is read from the input BatchNorm's size when not given;
    ``module.unit_branches()`` lists each unit's branches. Missing, unused or
    mis-shaped entries raise ``StateDictError``.
    """
    reader = StateDictReader(state_dict, model_name)
    overrides = infer_num_persons(reader, cls, overrides)
    module = build_module(cls, model_name, num_classes, overrides)
    num_subsets = module.adjacency().shape[0]
    variables = load_network(reader, module, model_name, num_subsets, module.unit_branches())
    return module, variables


def entry_points(
    cls: type[nn.Module], model_name: str, upstream: str
) -> tuple[Callable[..., nn.Module], Callable[..., tuple[nn.Module, dict[str, Any]]]]:
    """The registry's ``build`` and ``from_torch`` of ``cls``; ``upstream``: the authors' class."""

    def build(*, num_classes: int, **overrides: Any) -> nn.Module:
        return build_module(cls, model_name, num_classes, overrides)

    def load(
        state_dict: Mapping[str, Any], *, num_classes: int, **overrides: Any
    ) -> tuple[nn.Module, dict[str, Any]]:
        return from_torch(cls, model_name, state_dict, num_classes, overrides)

    build.__doc__ = f"``{cls.__name__}`` with the published defaults, changed by ``overrides``."
    load.__doc__ = (
        f"Maps a ``{upstream}`` ``state_dict`` onto ``{cls.__name__}``.\n\n"
        "Returns ``(module, variables)``. "
        "``num_persons`` is read from the input BatchNorm's size when not given.\n"
        "Missing, unused or mis-shaped entries raise ``StateDictError``."
    )
    return build, load
