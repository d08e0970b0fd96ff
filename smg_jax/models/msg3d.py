"""MS-G3D (Liu et al., CVPR 2020), one stream, as a pure Flax Linen module.

A port of kenziyuliu/MS-G3D (commit 2f927f4): ``model/msg3d.py`` and the
pieces it uses (``ms_gcn.py``, ``ms_gtcn.py``, ``ms_tcn.py``, ``mlp.py``,
``activation.py``). Given the authors' weights through ``from_torch`` it
reproduces their logits, which ``tests/test_msg3d.py`` checks.

The network::

    data BatchNorm over (M, V, C), statistics over clips and frames
    3 STGC blocks (widths 96, 192, 384; temporal strides 1, 2, 2), each
      x = relu( [MS-GCN -> MS-TCN -> MS-TCN (no activation)](x)     "sgcn"
              + sum over windows tau in (3, 5) of G3D_tau(x) )           "gcn3d"
      x = MS-TCN(x)                                                       "tcn"
    mean over frames and joints, then over bodies; Linear -> logits

* MS-GCN: ``K = 13`` disentangled scales of the skeleton (joints exactly
  ``k`` hops apart plus self-loops, ``D^-1/2 A D^-1/2``) plus a learnable
  residual ``A_res`` (``U(+-1e-6)``); the ``K`` aggregated copies are
  concatenated (scale-major channels) and mixed by a 1x1 conv, BN, ReLU.
* G3D_tau: windows of ``tau`` frames (stride = the block's, "same" padding)
  become graphs of ``tau V`` nodes (every joint linked to its neighbours and
  itself in all ``tau`` frames); 6 disentangled scales of that graph with
  ``A_res``, 1x1 conv, BN, ReLU; a ``(tau, 1)`` conv collapses the window,
  then BN (no activation).
* MS-TCN: six branches of ``C_out / 6`` channels on a 1x1 conv + BN (+ ReLU):
  four ``3``-frame convs with dilations 1-4, a 3-frame max pool, a strided
  1x1 conv; concatenated, plus a residual, ReLU.

Layout: the public input is ``(N, M, T, V, C)``; inside, ``(B, V, T, C)``
with ``B = N * M`` (joints major, as in ``layers``), so the temporal
convolutions run 1-D over frames with joints in the batch. A window graph's
nodes are ordered joint-major, ``v * tau + j``; the published
``j * V + v`` order is kept for ``A_res`` and the conversion.

Frame counts follow PyTorch's convolution arithmetic exactly, so any ``T``
works (odd, or not divisible by the strides) wherever the original works.
MS-G3D has no dropout in its published configuration; ``dropout`` exposes
the MLPs' optional dropout (placed before their 1x1 convs, as upstream).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax import graph
from smg_jax.graph import Skeleton
from smg_jax.models import build_module, example_input_for, layers, resolve_skeleton
from smg_jax.models.convert import (
    StateDictReader,
    VariableTree,
    check_variables,
    infer_num_persons,
    temporal_conv,
)

MODEL_NAME = "msg3d"
Array = jax.Array
Dtype = Any

# PyTorch's default Conv/Linear weight init, kaiming_uniform(a=sqrt(5)):
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)); MS-G3D keeps the defaults everywhere.
TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
A_RES_BOUND = 1e-6  # nn.init.uniform_(A_res, -1e-6, 1e-6)


# ---------------------------------------------------------------------------
# Graphs.
# ---------------------------------------------------------------------------


@functools.cache
def graph_scales(
    skeleton: Skeleton, num_scales: int, window_size: int = 1, disentangled: bool = True
) -> np.ndarray:
    """The ``(K * tau V, tau V)`` float32 multi-scale graph, scales stacked on rows.

    ``window_size=1`` is MS-GCN's spatial graph (``A_powers``), larger ones
    G3D's window graph (``A_scales``), nodes in the published ``j * V + v``
    order. ``disentangled=False`` gives the ablation with powers of the
    normalised one-hop graph (self-loops included).
    """
    binary = graph.binary_adjacency(skeleton)
    if window_size == 1:
        return graph.msg3d_scales(binary, num_scales, disentangled)
    window = graph.spatio_temporal_window(binary, window_size)  # already has self-loops
    if disentangled:
        return graph.msg3d_scales(window, num_scales, True)
    one_hop = graph.normalize_symmetric(window)
    powers = [np.linalg.matrix_power(one_hop, k) for k in range(num_scales)]
    return np.concatenate(powers).astype(np.float32)


# ---------------------------------------------------------------------------
# Blocks, in the (B, V, T, C) layout.
# ---------------------------------------------------------------------------


class Conv1x1Params(nn.Module):
    """The ``(in_features, features)`` kernel and bias of a PyTorch-initialised 1x1 conv."""

    in_features: int
    features: int
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self) -> tuple[Array, Array]:
        shape = (self.in_features, self.features)
        kernel = self.param("kernel", TORCH_KERNEL_INIT, shape, self.param_dtype)
        bias_init = layers.torch_linear_bias(self.in_features)
        return kernel, self.param("bias", bias_init, (self.features,), self.param_dtype)


@dataclasses.dataclass(frozen=True)
class GraphOptions:
    """How every multi-scale graph of a network is built (``MSG3D`` fields, see there)."""

    skeleton: Skeleton
    disentangled: bool = True
    use_a_res: bool = True
    dropout: float = 0.0

    def fields(self) -> dict[str, Any]:
        """The options as ``MultiScaleGraphConv`` keyword arguments."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


class MultiScaleGraphConv(nn.Module):
    """MS-GCN (``MultiScale_GraphConv``) and G3D's ``SpatialTemporal_MS_GCN``.

    ``(V, tau, B, L, C) -> (B, V, L, tau, features)``: the ``tau V`` nodes of
    each frame (``tau = 1``) or window aggregate over ``K`` scales of
    ``A + A_res``, the ``K`` results are concatenated (channel ``k * C + c``)
    and go through (dropout,) a 1x1 conv, BatchNorm and ReLU.

    Both products are linear, so when the conv does not widen (``C >=
    features``, every block but the first) and there is no dropout between
    them, the conv runs first: ``sum_k A_k (x W_k) + b``. The same sum, with
    better-shaped matmuls (a wide ``C -> K features`` conv, then one
    aggregation contracting ``K tau V`` terms) and the same number of flops.
    """

    features: int
    num_scales: int
    skeleton: Skeleton
    disentangled: bool = True
    use_a_res: bool = True
    dropout: float = 0.0
    bn_axis_name: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        v, tau, b, length, c = x.shape
        k, n, f = self.num_scales, v * tau, self.features
        scales = graph_scales(self.skeleton, k, tau, self.disentangled)
        a = jnp.asarray(scales)
        if self.use_a_res:
            a = a + self.param("A_res", layers.uniform(A_RES_BOUND), scales.shape, self.param_dtype)
        # Published node order j * V + v -> ours, joint-major v * tau + j, on both sides.
        a = a.reshape(k, tau, v, tau, v).transpose(0, 2, 1, 4, 3).reshape(k, n, n)
        a = a.astype(self.dtype)
        kernel, bias = Conv1x1Params(k * c, f, self.param_dtype, name="conv")()
        kernel, bias = kernel.astype(self.dtype), bias.astype(self.dtype)
        # Node-major input (N, B L C): every product below is a plain 2-D matmul.
        nodes = x.reshape(n, b, length, c)
        if c >= f and self.dropout <= 0.001:
            per_scale = kernel.reshape(k, c, f).transpose(1, 0, 2).reshape(c, k * f)
            y = (nodes.reshape(n * b * length, c) @ per_scale).reshape(n, b * length, k, f)
            y = y.transpose(2, 0, 1, 3).reshape(k * n, b * length * f)
            z = a.transpose(1, 0, 2).reshape(n, k * n) @ y  # (N, B L F)
            z = z.reshape(n, b, length, f).transpose(1, 0, 2, 3)  # (B, N, L, F)
            z = z.reshape(b, v, tau, length, f).transpose(0, 1, 3, 2, 4)
        else:
            z = a.reshape(k * n, n) @ nodes.reshape(n, b * length * c)
            # (K, V, tau, B, L, C) -> (B, V, L, tau, K C), channel k * C + c.
            z = z.reshape(k, v, tau, b, length, c).transpose(3, 1, 4, 2, 0, 5)
            z = z.reshape(b, v, length, tau, k * c)
            if self.dropout > 0.001:  # MLP adds a dropout layer only above 0.001
                z = layers.Dropout(self.dropout)(z, not train)
            z = z @ kernel
        z = layers.module_batch_norm(self, "bn")(z + bias, train)
        return nn.relu(z)


def unfold_windows(x: Array, window_size: int, stride: int, dilation: int) -> Array:
    """``UnfoldTemporalWindows``: frames on axis 2, ``(V, B, T, C) -> (V, tau, B, L, C)``.

    Window ``l`` holds frames ``l * stride + j * dilation - pad`` for
    ``j < tau`` (zeros outside), ``pad = (tau + (tau - 1)(dilation - 1) - 1) // 2``
    and ``L = floor((T + 2 pad - dilation (tau - 1) - 1) / stride) + 1``, as
    ``nn.Unfold`` computes them.
    """
    pad = (window_size + (window_size - 1) * (dilation - 1) - 1) // 2
    length = layers.conv_output_length(x.shape[2], window_size, stride, pad, dilation)
    padded = jnp.pad(x, ((0, 0), (0, 0), (pad, pad), (0, 0)))
    frames = [
        padded[:, :, j * dilation : j * dilation + (length - 1) * stride + 1 : stride]
        for j in range(window_size)
    ]
    return jnp.stack(frames, axis=1)


class G3DPathway(nn.Module):
    """One G3D window (the authors' ``MS_G3D`` with ``embed_factor=1``).

    ``(B, V, T, C) -> (B, V, L, features)``: unfold ``window[0]``-frame
    windows, multi-scale graph conv over their ``tau V`` nodes to
    ``embed_features`` channels, collapse the window with a ``(tau, 1)`` conv
    (``Conv3d`` kernel ``(1, tau, 1)``), BatchNorm, no activation.
    """

    features: int
    embed_features: int
    num_scales: int
    graph: GraphOptions
    window: tuple[int, int, int]  # frames, stride, dilation
    bn_axis_name: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        tau, stride, dilation = self.window
        # Node-major windows (V, tau, B, L, C), what the graph conv multiplies.
        windows = unfold_windows(x.transpose(1, 0, 2, 3), tau, stride, dilation)
        h = MultiScaleGraphConv(
            self.embed_features,
            self.num_scales,
            **self.graph.fields(),
            bn_axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="gcn",
        )(windows, train)
        b, v, length, _, e = h.shape  # (B, V, L, tau, E)
        kernel = self.param(
            "out_conv_kernel", TORCH_KERNEL_INIT, (tau, e, self.features), self.param_dtype
        )
        bias = self.param(
            "out_conv_bias", layers.torch_linear_bias(tau * e), (self.features,), self.param_dtype
        )
        h = h.reshape(b, v, length, tau * e) @ kernel.reshape(tau * e, -1).astype(self.dtype)
        h = h + bias.astype(self.dtype)
        return layers.module_batch_norm(self, "out_bn")(h, train)


class MultiScaleTemporalConv(nn.Module):
    """MS-TCN (``MultiScale_TemporalConv``): ``(B, V, T, C) -> (B, V, T', features)``.

    ``T' = ceil(T / stride)``. The five 1x1 convs that open the dilated and
    max-pool branches run as one ``C -> 5 features/6`` conv with one
    BatchNorm over its channels (each channel's statistics are its own, so
    this is the same computation); the strided 1x1 branch keeps its own.
    """

    features: int
    stride: int = 1
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 3, 4)
    residual: bool = True
    activation: bool = True
    bn_axis_name: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        c = x.shape[-1]
        num_branches = len(self.dilations) + 2
        if self.features % num_branches:
            raise ValueError(
                f"{MODEL_NAME}: MS-TCN width {self.features} must be a multiple of its "
                f"{num_branches} branches (len(tcn_dilations) + 2)."
            )
        width = self.features // num_branches
        s = self.stride
        opened = self._conv1x1("branches_in", x, width * (num_branches - 1))
        opened = nn.relu(layers.module_batch_norm(self, "branches_in_bn")(opened, train))
        outputs = []
        for index, dilation in enumerate(self.dilations):
            branch = opened[..., index * width : (index + 1) * width]
            branch = layers.TemporalConv(
                width,
                self.kernel_size,
                s,
                dilation,
                kernel_init=TORCH_KERNEL_INIT,
                bias_init=layers.torch_linear_bias(self.kernel_size * width),
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=f"branch{index}_conv",
            )(branch)
            outputs.append(layers.module_batch_norm(self, f"branch{index}_bn")(branch, train))
        pooled = layers.max_pool_time(opened[..., -width:], 3, s, 1)
        outputs.append(layers.module_batch_norm(self, "pool_bn")(pooled, train))
        strided = self._conv1x1("strided_conv", x[:, :, ::s], width)
        outputs.append(layers.module_batch_norm(self, "strided_bn")(strided, train))
        out = jnp.concatenate(outputs, axis=-1)
        if self.residual:
            if c == self.features and s == 1:
                out = out + x
            else:
                # TemporalConv(kernel_size=1, stride): strided 1x1 conv + BN.
                res = self._conv1x1("residual_conv", x[:, :, ::s], self.features)
                out = out + layers.module_batch_norm(self, "residual_bn")(res, train)
        return nn.relu(out) if self.activation else out

    def _conv1x1(self, name: str, x: Array, features: int) -> Array:
        return nn.Dense(
            features,
            kernel_init=TORCH_KERNEL_INIT,
            bias_init=layers.torch_linear_bias(x.shape[-1]),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=name,
        )(x)


class STGCBlock(nn.Module):
    """One MS-G3D block: ``tcn(relu(sgcn(x) + sum_tau G3D_tau(x)))``.

    ``(B, V, T, C) -> (B, V, ceil(T / stride), features)``. The MS-GCN of the
    first block widens to ``features`` at once, later ones keep ``C`` and the
    first MS-TCN widens; likewise the first block's G3D embeds to
    ``features`` and later ones keep ``C`` until the window collapse (the
    original tests ``in_channels == 3`` for this, i.e. the first block).
    """

    features: int
    stride: int
    num_gcn_scales: int
    num_g3d_scales: int
    graph: GraphOptions
    window_sizes: tuple[int, ...]
    window_dilations: tuple[int, ...]
    tcn_kernel_size: int
    tcn_dilations: tuple[int, ...]
    first: bool = False
    bn_axis_name: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        c = x.shape[-1]
        inner = self.features if self.first else c
        common = {
            "bn_axis_name": self.bn_axis_name,
            "dtype": self.dtype,
            "param_dtype": self.param_dtype,
        }
        tcn_args = {"kernel_size": self.tcn_kernel_size, "dilations": self.tcn_dilations}

        spatial = MultiScaleGraphConv(
            inner, self.num_gcn_scales, name="sgcn_gcn", **self.graph.fields(), **common
        )(x.transpose(1, 0, 2, 3)[:, None], train)[:, :, :, 0]
        spatial = MultiScaleTemporalConv(
            self.features, self.stride, name="sgcn_tcn1", **tcn_args, **common
        )(spatial, train)
        spatial = MultiScaleTemporalConv(
            self.features, activation=False, name="sgcn_tcn2", **tcn_args, **common
        )(spatial, train)

        windows = 0
        for index, (size, dilation) in enumerate(
            zip(self.window_sizes, self.window_dilations, strict=True)
        ):
            windows = windows + G3DPathway(
                self.features,
                inner,
                self.num_g3d_scales,
                self.graph,
                (size, self.stride, dilation),
                name=f"gcn3d{index}",
                **common,
            )(x, train)

        x = nn.relu(spatial + windows)
        return MultiScaleTemporalConv(self.features, name="tcn", **tcn_args, **common)(x, train)


# ---------------------------------------------------------------------------
# The network.
# ---------------------------------------------------------------------------


class MSG3D(nn.Module):
    """MS-G3D, one stream (the authors' ``model.msg3d.Model``).

    Call: ``x`` ``(N, M, T, V, C)`` -> ``(N, num_classes)`` float32 logits;
    the pooled ``(N, channels[-1])`` features are sown as
    ``intermediates/features``.

    Attributes:
      num_classes: classifier size.
      num_persons: bodies per clip ``M`` (SMG: 1; the NTU recipes: 2). The
        input BatchNorm has ``M * V * C`` channels, so weights depend on it.
      in_channels: coordinates per joint ``C``.
      skeleton: joint layout (name or ``Skeleton``).
      channels: block widths (96, 192, 384); multiples of
        ``len(tcn_dilations) + 2``.
      strides: temporal stride of each block (1, 2, 2), also the G3D window
        stride.
      num_gcn_scales: MS-GCN scales ``K`` (13: the paper's ``K + 1``).
      num_g3d_scales: G3D scales (6).
      window_sizes / window_dilations: one G3D pathway per pair ((3, 5), (1, 1)).
      tcn_kernel_size / tcn_dilations: MS-TCN's dilated branches (3; 1-4).
      disentangled_agg: exactly-k-hop scales (off: powers of the normalised
        one-hop graph, the biased aggregation the paper argues against).
      use_a_res: the learnable ``A_res`` offsets of every graph.
      dropout: rate before each graph conv's 1x1 conv (0 as published).
      bn_axis_name: axis for cross-replica BatchNorm statistics.
      dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay ``param_dtype``.
    """

    num_classes: int
    num_persons: int = 1
    in_channels: int = 3
    skeleton: str | Skeleton = "kinect_v2"
    channels: tuple[int, ...] = (96, 192, 384)
    strides: tuple[int, ...] = (1, 2, 2)
    num_gcn_scales: int = 13
    num_g3d_scales: int = 6
    window_sizes: tuple[int, ...] = (3, 5)
    window_dilations: tuple[int, ...] = (1, 1)
    tcn_kernel_size: int = 3
    tcn_dilations: tuple[int, ...] = (1, 2, 3, 4)
    disentangled_agg: bool = True
    use_a_res: bool = True
    dropout: float = 0.0
    bn_axis_name: str | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        """``x (N, M, T, V, C)`` -> logits ``(N, num_classes)`` (float32)."""
        layers.check_units(MODEL_NAME, self.channels, self.strides)
        skeleton = resolve_skeleton(self.skeleton)
        graph = GraphOptions(skeleton, self.disentangled_agg, self.use_a_res, self.dropout)
        dtype = self.dtype or jnp.float32

        def units(x: Array) -> Array:
            for index, (features, stride) in enumerate(
                zip(self.channels, self.strides, strict=True)
            ):
                x = STGCBlock(
                    features,
                    stride,
                    self.num_gcn_scales,
                    self.num_g3d_scales,
                    graph,
                    tuple(self.window_sizes),
                    tuple(self.window_dilations),
                    self.tcn_kernel_size,
                    tuple(self.tcn_dilations),
                    first=index == 0,
                    **layers.unit_options(self),
                    name=f"block{index + 1}",
                )(x, train)
            return x

        fc = nn.Dense(
            self.num_classes,
            kernel_init=TORCH_KERNEL_INIT,
            bias_init=layers.torch_linear_bias(self.channels[-1]),
            dtype=dtype,
            param_dtype=self.param_dtype,
            name="fc",
        )
        return layers.backbone(
            self, MODEL_NAME, x, train, units, fc,
            num_joints=skeleton.num_joints, num_persons=self.num_persons,
        )  # fmt: skip


def build(*, num_classes: int, **overrides: Any) -> MSG3D:
    """MS-G3D with the published configuration, changed by ``overrides`` (see ``MSG3D``)."""
    return build_module(MSG3D, MODEL_NAME, num_classes, overrides)


# ---------------------------------------------------------------------------
# The authors' weights.
# ---------------------------------------------------------------------------


def _load_graph_conv(
    tree: VariableTree, reader: StateDictReader, ours: str, theirs: str, module: MSG3D
) -> None:
    """``MultiScale_GraphConv`` / ``SpatialTemporal_MS_GCN``: ``A_res`` and ``mlp``."""
    if module.use_a_res:
        tree.param(f"{ours}/A_res", reader.get(f"{theirs}.A_res"))
    first = 1 if module.dropout > 0.001 else 0  # mlp.layers = [Dropout,] Conv2d, BN, act
    tree.param(f"{ours}/conv", reader.conv_as_dense(f"{theirs}.mlp.layers.{first}"))
    tree.batch_norm(f"{ours}/bn", reader, f"{theirs}.mlp.layers.{first + 1}")


def _load_temporal(
    tree: VariableTree, reader: StateDictReader, ours: str, theirs: str, module: MSG3D
) -> None:
    """``MultiScale_TemporalConv``: six branches (five 1x1 convs fused) and the residual."""
    dilated = len(module.tcn_dilations)
    opening = [reader.conv_as_dense(f"{theirs}.branches.{i}.0") for i in range(dilated + 1)]
    tree.param(
        f"{ours}/branches_in",
        {key: np.concatenate([p[key] for p in opening], axis=-1) for key in ("kernel", "bias")},
    )
    norms = [reader.batch_norm(f"{theirs}.branches.{i}.1") for i in range(dilated + 1)]
    params = {key: np.concatenate([p[key] for p, _ in norms]) for key in ("scale", "bias")}
    stats = {key: np.concatenate([s[key] for _, s in norms]) for key in ("mean", "var")}
    tree.param(f"{ours}/branches_in_bn", params)
    tree.stats(f"{ours}/branches_in_bn", stats)
    for i in range(dilated):
        tree.param(f"{ours}/branch{i}_conv", temporal_conv(reader, f"{theirs}.branches.{i}.3.conv"))
        tree.batch_norm(f"{ours}/branch{i}_bn", reader, f"{theirs}.branches.{i}.3.bn")
    tree.batch_norm(f"{ours}/pool_bn", reader, f"{theirs}.branches.{dilated}.4")
    tree.param(f"{ours}/strided_conv", reader.conv_as_dense(f"{theirs}.branches.{dilated + 1}.0"))
    tree.batch_norm(f"{ours}/strided_bn", reader, f"{theirs}.branches.{dilated + 1}.1")
    if f"{theirs}.residual.conv.weight" in reader:
        tree.param(f"{ours}/residual_conv", reader.conv_as_dense(f"{theirs}.residual.conv"))
        tree.batch_norm(f"{ours}/residual_bn", reader, f"{theirs}.residual.bn")


def from_torch(
    state_dict: Mapping[str, Any], *, num_classes: int, **overrides: Any
) -> tuple[MSG3D, dict[str, Any]]:
    """Maps a ``model.msg3d.Model`` ``state_dict`` onto ``MSG3D``.

    ``num_persons`` is read off ``data_bn`` unless given. The fixed graphs
    are not in the state_dict (plain tensor attributes upstream); the model
    rebuilds them.

    Returns:
      ``(module, {"params": ..., "batch_stats": ...})``.

    Raises:
      StateDictError: missing, unused or mis-shaped entries.
    """
    reader = StateDictReader(state_dict, MODEL_NAME)
    module = build(num_classes=num_classes, **infer_num_persons(reader, MSG3D, overrides))
    tree = VariableTree()
    tree.batch_norm("data_bn/bn", reader, "data_bn")
    for index in range(len(module.channels)):
        ours, i = f"block{index + 1}", index + 1
        _load_graph_conv(tree, reader, f"{ours}/sgcn_gcn", f"sgcn{i}.0", module)
        _load_temporal(tree, reader, f"{ours}/sgcn_tcn1", f"sgcn{i}.1", module)
        _load_temporal(tree, reader, f"{ours}/sgcn_tcn2", f"sgcn{i}.2", module)
        for w in range(len(module.window_sizes)):
            g3d, theirs = f"{ours}/gcn3d{w}", f"gcn3d{i}.gcn3d.{w}"
            _load_graph_conv(tree, reader, f"{g3d}/gcn", f"{theirs}.gcn3d.1", module)
            weight = reader.get(f"{theirs}.out_conv.weight")  # (out, E, 1, tau, 1)
            tree.param(f"{g3d}/out_conv_kernel", np.transpose(weight[:, :, 0, :, 0], (2, 1, 0)))
            tree.param(f"{g3d}/out_conv_bias", reader.get(f"{theirs}.out_conv.bias"))
            tree.batch_norm(f"{g3d}/out_bn", reader, f"{theirs}.out_bn")
        _load_temporal(tree, reader, f"{ours}/tcn", f"tcn{i}", module)
    tree.param("fc", reader.linear("fc"))
    reader.finish()

    variables = tree.variables()
    check_variables(MODEL_NAME, variables, module, example_input_for(module))
    return module, jax.tree.map(jnp.asarray, variables)
