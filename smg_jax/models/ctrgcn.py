"""CTR-GCN, one stream (Chen, Zhang, Yuan, Li, Deng and Hu, ICCV 2021), faithful to
Uason-Chen/CTR-GCN ``model/ctrgcn.py``.

The network: an input BatchNorm over ``M * V * C`` channels, ten units,
global average pooling over frames, joints and bodies, optional dropout and
a linear classifier. Each unit is a channel-wise topology refinement graph
convolution (``CTRGC``, one per adjacency subset: a shared topology ``A_k``
refined per channel by ``alpha * conv4(tanh(phi(x)_u - psi(x)_v))``, then
aggregated), followed by a multi-scale temporal convolution (two dilated
5-frame branches, a max-pool branch and a 1x1 branch), a residual path and
ReLU.

Initialisation as published: ``kaiming_normal(fan_out)`` convolutions with
zero bias; BatchNorm scale 1 except ``1e-6`` after the graph convolution
and ``N(1, 0.02)`` inside the multi-scale temporal convolution; ``A_k``
(``PA``) starts at the identity / inward / outward graph, ``alpha`` at 0;
classifier ``normal(0, sqrt(2 / num_classes))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.models import build_module, example_input_for, layers
from smg_jax.models.convert import (
    StateDictReader,
    VariableTree,
    check_variables,
    infer_num_persons,
    load_stacked_conv,
    temporal_conv,
)
from smg_jax.models.ops import channel_topology

MODEL_NAME = "ctrgcn"
# ``weights_init`` of MultiScale_TemporalConv: BatchNorm scales N(1, 0.02).
MSTCN_BN_INIT = layers.normal(1.0, 0.02)


def relation_channels(in_channels: int, rel_reduction: int) -> int:
    """CTRGC's embedding width: 8 for 3- or 9-channel inputs, else ``in // rel_reduction``."""
    return 8 if in_channels in (3, 9) else in_channels // rel_reduction


class CTRGraphConv(nn.Module):
    """``unit_gcn``: ``K`` CTRGCs summed, ``BN`` (scale ``1e-6``), ``+ down(x)``, ReLU.

    Input ``(B, V, T, C)``, topology ``(K, V, V)``; output ``(B, V, T, O)``.
    For subset ``k`` and channel ``o``, joint ``u`` gathers
    ``sum_v (alpha * R_k[u, v, o] + A_k[u, v]) * conv3_k(x)[v, o]`` with
    ``R_k = conv4_k(tanh(conv1_k(x)_u - conv2_k(x)_v))`` averaged over frames
    (``einsum('ncuv,nctv->nctu')``: rows of ``A_k`` are the receiving joints).

    The ``K`` CTRGCs' 1x1 convolutions are stacked into single kernels
    (``conv1``, ``conv2``: ``(1, C, K * R)``; ``conv3``: ``(1, C, K * O)``;
    ``conv4``: ``(K, R, O)``). ``conv1``/``conv2`` average over frames
    before their projection, which equals upstream's projection then average.

    Attributes:
      features: ``O``.
      adaptive: ``A_k`` is a parameter (``PA``) initialised to the graph;
        ``False`` keeps the graph fixed.
      rel_reduction: ``R = C // rel_reduction`` (8 for 3- or 9-channel inputs).
    """

    features: int
    adaptive: bool = True
    rel_reduction: int = 8
    bn_axis_name: str | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, graph: np.ndarray, train: bool) -> jax.Array:
        k, c, o = graph.shape[0], x.shape[-1], self.features
        rel = relation_channels(c, self.rel_reduction)
        if rel == 0:
            # Upstream would build zero-channel convolutions here and silently drop the
            # refinement; only 3- and 9-channel inputs are special-cased there.
            raise ValueError(
                f"{MODEL_NAME}: CTRGC's relation width {c} // rel_reduction "
                f"({self.rel_reduction}) is 0; use in_channels 3 or 9, or at least "
                "rel_reduction input channels."
            )
        dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
        if self.adaptive:
            topology = self.param(
                "PA", lambda key, shape, dt: jnp.asarray(graph, dt), graph.shape, self.param_dtype
            )
        else:
            topology = jnp.asarray(graph)
        alpha = self.param("alpha", layers.zeros, (1,), self.param_dtype)

        def conv(features: int, per_subset: int, name: str) -> layers.TemporalConv:
            return layers.TemporalConv(
                features,
                1,
                kernel_init=layers.kaiming_fan_out(per_subset),
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=name,
            )

        b, v = x.shape[:2]
        frames_mean = x.mean(axis=2, keepdims=True)  # (B, V, 1, C)
        x1 = conv(k * rel, rel, "conv1")(frames_mean)[:, :, 0].reshape(b, v, k, rel)
        x2 = conv(k * rel, rel, "conv2")(frames_mean)[:, :, 0].reshape(b, v, k, rel)
        relation = jnp.tanh(x1[:, :, None] - x2[:, None, :])  # (B, U, V, K, R)

        kernel3, bias3 = layers.ParamsOnlyConv(
            c, k * o, 1, layers.kaiming_fan_out(o), param_dtype=self.param_dtype, name="conv3"
        )()
        kernel4 = self.param(
            "conv4_kernel", layers.kaiming_fan_out(o), (k, rel, o), self.param_dtype
        )
        bias4 = self.param("conv4_bias", layers.zeros, (k, o), self.param_dtype)
        y = channel_topology.refine_and_aggregate(
            x, relation, kernel3[0], bias3, kernel4, bias4, alpha, topology, dtype
        )
        return layers.graph_conv_output(
            y, x, train, self.bn_axis_name, self.dtype, self.param_dtype
        )


class MultiScaleTemporalConv(nn.Module):
    """``MultiScale_TemporalConv`` (without its residual, as CTR-GCN uses it).

    Input ``(B, V, T, C)``, output ``(B, V, floor((T - 1) / stride) + 1,
    features)``: the channel concatenation of ``len(dilations) + 2`` branches
    of ``features / (len(dilations) + 2)`` channels each:

    * per dilation ``d``: 1x1 conv, BN, ReLU, ``kernel_size``-frame conv with
      dilation ``d`` and stride, BN;
    * 1x1 conv, BN, ReLU, 3-frame max pool with stride, BN;
    * strided 1x1 conv, BN.
    """

    features: int
    kernel_size: int = 5
    stride: int = 1
    dilations: tuple[int, ...] = (1, 2)
    bn_axis_name: str | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        num_branches = len(self.dilations) + 2
        if self.features % num_branches:
            raise ValueError(
                f"{MODEL_NAME}: {self.features} output channels do not split into "
                f"{num_branches} temporal branches."
            )
        width = self.features // num_branches
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype)

        def conv(kernel: int, stride: int, dilation: int, name: str) -> layers.TemporalConv:
            return layers.TemporalConv(
                width,
                kernel,
                stride,
                dilation,
                padding=(kernel + (kernel - 1) * (dilation - 1) - 1) // 2,
                kernel_init=layers.kaiming_fan_out(width, kernel),
                name=name,
                **common,
            )

        def bn(name: str) -> layers.BatchNorm:
            return layers.BatchNorm(
                scale_init=MSTCN_BN_INIT, axis_name=self.bn_axis_name, name=name, **common
            )

        outs = []
        for i, dilation in enumerate(self.dilations):
            y = nn.relu(bn(f"branch{i}_bn1")(conv(1, 1, 1, f"branch{i}_conv1")(x), train))
            y = conv(self.kernel_size, self.stride, dilation, f"branch{i}_conv2")(y)
            outs.append(bn(f"branch{i}_bn2")(y, train))
        i = len(self.dilations)
        y = nn.relu(bn(f"branch{i}_bn1")(conv(1, 1, 1, f"branch{i}_conv1")(x), train))
        y = layers.max_pool_time(y, 3, self.stride, 1)
        outs.append(bn(f"branch{i}_bn2")(y, train))
        i += 1
        y = conv(1, self.stride, 1, f"branch{i}_conv1")(x)
        outs.append(bn(f"branch{i}_bn1")(y, train))
        return jnp.concatenate(outs, axis=-1)


class CTRGCNUnit(nn.Module):
    """``TCN_GCN_unit``: ``ReLU(mstcn(ctrgc(x)) + residual(x))``."""

    features: int
    stride: int = 1
    residual: bool = True
    adaptive: bool = True
    rel_reduction: int = 8
    kernel_size: int = 5
    dilations: tuple[int, ...] = (1, 2)
    bn_axis_name: str | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, graph: np.ndarray, train: bool) -> jax.Array:
        common = dict(
            bn_axis_name=self.bn_axis_name, dtype=self.dtype, param_dtype=self.param_dtype
        )
        res = layers.residual_path(x, self.features, self.stride, self.residual, train, **common)
        y = CTRGraphConv(self.features, self.adaptive, self.rel_reduction, name="gcn1", **common)(
            x, graph, train
        )
        y = MultiScaleTemporalConv(
            self.features, self.kernel_size, self.stride, self.dilations, name="tcn1", **common
        )(y, train)
        return nn.relu(y + res)


class CTRGCN(layers.SubsetsNetwork):
    """CTR-GCN (one stream): ``(N, M, T, V, C) -> (N, num_classes)`` logits.

    The fields of ``layers.SubsetsNetwork``, and:

    Attributes:
      channels: output channels of the units (multiples of ``len(dilations) + 2``).
      kernel_size: frames of the dilated temporal convolutions (5).
      dilations: one temporal branch per dilation (1, 2).
      adaptive: learn the shared topology ``A_k`` (``PA``).
      rel_reduction: CTRGC embedding reduction (8).
      dropout: rate before the classifier (upstream ``drop_out``, 0).
      residual: residual paths in units 2..n (the first never has one).
    """

    kernel_size: int = 5
    dilations: tuple[int, ...] = (1, 2)
    adaptive: bool = True
    rel_reduction: int = 8
    dropout: float = 0.0
    residual: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """``x (N, M, T, V, C)`` -> logits ``(N, num_classes)`` (float32)."""
        layers.check_units(MODEL_NAME, self.channels, self.strides)
        graph = self.adjacency()

        def units(x: jax.Array) -> jax.Array:
            for i, (features, stride) in enumerate(zip(self.channels, self.strides, strict=True)):
                x = CTRGCNUnit(
                    features,
                    stride,
                    residual=self.residual and i > 0,
                    adaptive=self.adaptive,
                    rel_reduction=self.rel_reduction,
                    kernel_size=self.kernel_size,
                    dilations=self.dilations,
                    **layers.unit_options(self),
                    name=f"l{i + 1}",
                )(x, graph, train)
            return x

        return layers.backbone(
            self, MODEL_NAME, x, train, units,
            num_joints=graph.shape[1], num_persons=self.num_persons, dropout_rate=self.dropout,
        )  # fmt: skip


def build(*, num_classes: int, **overrides: Any) -> CTRGCN:
    """CTR-GCN with the published defaults; ``overrides`` are ``CTRGCN`` fields."""
    return build_module(CTRGCN, MODEL_NAME, num_classes, overrides)


def _load_unit(
    reader: StateDictReader, tree: VariableTree, i: int, num_subsets: int, module: CTRGCN
) -> None:
    prefix, ours = f"l{i + 1}", f"l{i + 1}"
    gcn = f"{prefix}.gcn1"
    if module.adaptive:
        tree.param(f"{ours}/gcn1/PA", reader.get(f"{gcn}.PA"))
    tree.param(f"{ours}/gcn1/alpha", reader.get(f"{gcn}.alpha"))
    for name in ("conv1", "conv2", "conv3"):
        prefixes = [f"{gcn}.convs.{k}.{name}" for k in range(num_subsets)]
        tree.param(f"{ours}/gcn1/{name}", load_stacked_conv(reader, prefixes))
    conv4 = [reader.conv_as_dense(f"{gcn}.convs.{k}.conv4") for k in range(num_subsets)]
    tree.param(f"{ours}/gcn1/conv4_kernel", np.stack([c["kernel"] for c in conv4]))
    tree.param(f"{ours}/gcn1/conv4_bias", np.stack([c["bias"] for c in conv4]))
    tree.batch_norm(f"{ours}/gcn1/bn", reader, f"{gcn}.bn")
    if f"{gcn}.down.0.weight" in reader:
        tree.param(f"{ours}/gcn1/down/conv", temporal_conv(reader, f"{gcn}.down.0"))
        tree.batch_norm(f"{ours}/gcn1/down/bn", reader, f"{gcn}.down.1")

    tcn, n = f"{prefix}.tcn1.branches", len(module.dilations)
    for b in range(n):
        tree.param(f"{ours}/tcn1/branch{b}_conv1", temporal_conv(reader, f"{tcn}.{b}.0"))
        tree.batch_norm(f"{ours}/tcn1/branch{b}_bn1", reader, f"{tcn}.{b}.1")
        tree.param(f"{ours}/tcn1/branch{b}_conv2", temporal_conv(reader, f"{tcn}.{b}.3.conv"))
        tree.batch_norm(f"{ours}/tcn1/branch{b}_bn2", reader, f"{tcn}.{b}.3.bn")
    tree.param(f"{ours}/tcn1/branch{n}_conv1", temporal_conv(reader, f"{tcn}.{n}.0"))
    tree.batch_norm(f"{ours}/tcn1/branch{n}_bn1", reader, f"{tcn}.{n}.1")
    tree.batch_norm(f"{ours}/tcn1/branch{n}_bn2", reader, f"{tcn}.{n}.4")
    tree.param(f"{ours}/tcn1/branch{n + 1}_conv1", temporal_conv(reader, f"{tcn}.{n + 1}.0"))
    tree.batch_norm(f"{ours}/tcn1/branch{n + 1}_bn1", reader, f"{tcn}.{n + 1}.1")

    if f"{prefix}.residual.conv.weight" in reader:
        tree.param(f"{ours}/residual/conv", temporal_conv(reader, f"{prefix}.residual.conv"))
        tree.batch_norm(f"{ours}/residual/bn", reader, f"{prefix}.residual.bn")


def from_torch(
    state_dict: Mapping[str, Any], *, num_classes: int, **overrides: Any
) -> tuple[CTRGCN, dict[str, Any]]:
    """Maps a ``model.ctrgcn.Model`` ``state_dict`` onto ``CTRGCN``.

    ``num_persons`` is read from the input BatchNorm's size when not given.
    Missing, unused or mis-shaped entries raise ``StateDictError``.
    """
    reader = StateDictReader(state_dict, MODEL_NAME)
    overrides = infer_num_persons(reader, CTRGCN, overrides)
    module = build(num_classes=num_classes, **overrides)
    num_subsets = module.adjacency().shape[0]

    tree = VariableTree()
    tree.batch_norm("data_bn/bn", reader, "data_bn")
    for i in range(len(module.channels)):
        _load_unit(reader, tree, i, num_subsets, module)
    tree.param("fc", reader.linear("fc"))
    reader.finish()

    variables = tree.variables()
    check_variables(MODEL_NAME, variables, module, example_input_for(module))
    return module, jax.tree.map(jnp.asarray, variables)
