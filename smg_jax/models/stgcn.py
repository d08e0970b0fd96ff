"""ST-GCN (Yan, Xiong and Lin, AAAI 2018), faithful to yysijie/st-gcn ``net/st_gcn.py``.

The network: an input BatchNorm over ``V * C`` channels (bodies in the
batch), ten spatial-temporal blocks, global average pooling over frames,
joints and bodies, and a 1x1 convolution as the classifier. Each block is
a graph convolution over ``K`` partitioned adjacency subsets (scaled by a
learnable edge-importance mask), then BatchNorm-ReLU-temporal conv
(9 frames)-BatchNorm-dropout, a residual path, and ReLU.

Initialisation follows the authors' training code (``processor/
recognition.py``, ``weights_init``): every convolution ``N(0, 0.02)`` with
zero bias, every BatchNorm scale ``N(1, 0.02)`` with zero bias, edge
importance ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.graph import Skeleton, stgcn_adjacency
from smg_jax.models import build_module, example_input_for, layers, resolve_skeleton
from smg_jax.models.convert import (
    StateDictError,
    StateDictReader,
    VariableTree,
    check_variables,
    temporal_conv,
)
from smg_jax.models.ops import joints

MODEL_NAME = "stgcn"

# ``weights_init`` of st-gcn's processor/recognition.py.
CONV_INIT = layers.normal(0.0, 0.02)
BN_SCALE_INIT = layers.normal(1.0, 0.02)


class GraphConv(nn.Module):
    """ST-GCN's ``ConvTemporalGraphical``: a 1x1 conv to ``K * features`` then ``x @ A_k`` summed.

    Input ``(B, V, T, C)``, adjacency ``(K, V, V)``, output
    ``(B, V, T, features)``; computed by ``graph_project``.

    Params: ``kernel (C, K * features)`` and ``bias (K * features,)`` with
    PyTorch's output channel order ``k * features + c``.
    """

    features: int
    kernel_init: layers.Initializer = nn.initializers.lecun_normal()
    bias_init: layers.Initializer = layers.zeros
    dtype: layers.Dtype | None = None
    param_dtype: layers.Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, adjacency: jax.Array) -> jax.Array:
        c = x.shape[-1]
        k = adjacency.shape[0]
        o = self.features
        kernel = self.param("kernel", self.kernel_init, (c, k * o), self.param_dtype)
        bias = self.param("bias", self.bias_init, (k * o,), self.param_dtype)
        dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
        per_subset = kernel.astype(dtype).reshape(c, k, o).transpose(1, 0, 2)
        return joints.graph_project(
            x.astype(dtype), adjacency.astype(dtype), per_subset, bias.astype(dtype).reshape(k, o)
        )


class STGCNBlock(nn.Module):
    """``st_gcn``: graph conv -> BN-ReLU-Conv(k, 1)-BN-Dropout, + residual, ReLU.

    Input ``(B, V, T, C)``, adjacency ``(K, V, V)`` (already multiplied by
    the edge importance), output ``(B, V, T', features)`` with
    ``T' = floor((T - 1) / stride) + 1``.

    Attributes:
      features: output channels.
      stride: temporal stride of the temporal convolution.
      temporal_kernel_size: odd number of frames ``k``; padding ``(k-1)/2``.
      dropout: rate of the dropout at the end of the temporal branch.
      residual: ``False`` drops the residual path (the first block).
    """

    features: int
    stride: int = 1
    temporal_kernel_size: int = 9
    dropout: float = 0.0
    residual: bool = True
    bn_axis_name: str | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, adjacency: jax.Array, train: bool) -> jax.Array:
        bn = dict(
            scale_init=BN_SCALE_INIT,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        res = layers.residual_path(
            x,
            self.features,
            self.stride,
            self.residual,
            train,
            kernel_init=CONV_INIT,
            bn_scale_init=BN_SCALE_INIT,
            bn_axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        y = GraphConv(
            self.features,
            kernel_init=CONV_INIT,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="gcn",
        )(x, adjacency)
        y = layers.BatchNorm(**bn, name="tcn_bn1")(y, train)
        y = nn.relu(y)
        y = layers.TemporalConv(
            self.features,
            self.temporal_kernel_size,
            self.stride,
            kernel_init=CONV_INIT,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="tcn_conv",
        )(y)
        y = layers.BatchNorm(**bn, name="tcn_bn2")(y, train)
        y = layers.Dropout(self.dropout)(y, not train)
        return nn.relu(y + res)


class STGCN(nn.Module):
    """ST-GCN: ``(N, M, T, V, C) -> (N, num_classes)`` logits.

    Attributes:
      num_classes: classifier size.
      in_channels: ``C`` of the input (3 for xyz).
      skeleton: joint layout (name or ``Skeleton``); ``V`` follows from it.
      strategy: graph partition, ``"uniform"``, ``"distance"`` or ``"spatial"``.
      max_hop: neighbourhood radius in bones.
      graph_dilation: keep every ``graph_dilation``-th hop (st-gcn's ``dilation``).
      center_hops: ``"truncated"`` (the published code) or ``"exact"``; see
        ``smg_jax.graph.stgcn_adjacency``.
      edge_importance: learnable ``(K, V, V)`` mask per block, initialised to ones.
      temporal_kernel_size: odd temporal kernel of every block (9).
      dropout: rate in every block but the first. 0.5 as in the paper and its
        NTU configs; the SMG authors trained with 0.1 (set it in the recipe).
      channels: output channels of the blocks.
      strides: temporal strides of the blocks (same length as ``channels``).
      residual: residual paths in blocks 2..n (the first never has one).
      num_persons: bodies per clip. ST-GCN folds bodies into the batch, so its
        weights do not depend on it and any ``M`` is accepted.
      bn_axis_name: axis for cross-replica BatchNorm statistics.
      dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay ``param_dtype``.
    """

    num_classes: int
    in_channels: int = 3
    skeleton: str | Skeleton = "kinect_v2"
    strategy: str = "spatial"
    max_hop: int = 1
    graph_dilation: int = 1
    center_hops: str = "truncated"
    edge_importance: bool = True
    temporal_kernel_size: int = 9
    dropout: float = 0.5
    channels: tuple[int, ...] = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
    strides: tuple[int, ...] = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    residual: bool = True
    num_persons: int = 1
    bn_axis_name: str | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def adjacency(self) -> np.ndarray:
        """The ``(K, V, V)`` partitioned adjacency (st-gcn's ``Graph.A``)."""
        return stgcn_adjacency(
            resolve_skeleton(self.skeleton),
            self.strategy,
            self.max_hop,
            self.graph_dilation,
            self.center_hops,
        )

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """``x (N, M, T, V, C)`` -> logits ``(N, num_classes)`` (float32)."""
        layers.check_units(MODEL_NAME, self.channels, self.strides)
        if self.temporal_kernel_size % 2 != 1:
            raise ValueError(f"{MODEL_NAME}: temporal_kernel_size must be odd.")
        adjacency = jnp.asarray(self.adjacency())
        dtype = self.dtype or jnp.float32

        def units(x: jax.Array) -> jax.Array:
            for i, (features, stride) in enumerate(zip(self.channels, self.strides, strict=True)):
                a = adjacency
                if self.edge_importance:
                    a = a * self.param(
                        f"edge_importance_{i}", layers.ones, a.shape, self.param_dtype
                    )
                x = STGCNBlock(
                    features,
                    stride,
                    self.temporal_kernel_size,
                    dropout=0.0 if i == 0 else self.dropout,
                    residual=self.residual and i > 0,
                    **layers.unit_options(self),
                    name=f"st_gcn_{i}",
                )(x, a, train)
            return x

        fcn = nn.Dense(
            self.num_classes,
            kernel_init=CONV_INIT,
            dtype=dtype,
            param_dtype=self.param_dtype,
            name="fcn",
        )
        return layers.backbone(
            self, MODEL_NAME, x, train, units, fcn,
            num_joints=adjacency.shape[1], num_persons=None,
            bodies_in_channels=False, data_bn_scale_init=BN_SCALE_INIT,
        )  # fmt: skip


def build(*, num_classes: int, **overrides: Any) -> STGCN:
    """ST-GCN with the published defaults; ``overrides`` are ``STGCN`` fields."""
    return build_module(STGCN, MODEL_NAME, num_classes, overrides)


def _matching_graph_hint(stored: np.ndarray, module: STGCN) -> str:
    """Names the partition that produced ``stored``, if a common one did."""
    skeleton = resolve_skeleton(module.skeleton)
    for strategy in ("uniform", "distance", "spatial"):
        for max_hop in (1, 2, 3):
            candidate = stgcn_adjacency(skeleton, strategy, max_hop, module.graph_dilation)
            if candidate.shape == stored.shape and np.allclose(candidate, stored, atol=1e-6):
                return f" (it matches strategy={strategy!r}, max_hop={max_hop})"
    return ""


def from_torch(
    state_dict: Mapping[str, Any], *, num_classes: int, **overrides: Any
) -> tuple[STGCN, dict[str, Any]]:
    """Maps a ``net.st_gcn.Model`` ``state_dict`` onto ``STGCN``.

    The checkpoint's ``A`` buffer must equal the adjacency this module
    builds (same layout, strategy and hops); a mismatch is a
    ``StateDictError``, as are missing, unused or mis-shaped entries.
    """
    module = build(num_classes=num_classes, **overrides)
    reader = StateDictReader(state_dict, MODEL_NAME)
    adjacency = module.adjacency()
    stored = reader.get("A")
    if stored.shape != adjacency.shape or not np.allclose(stored, adjacency, atol=1e-6):
        raise StateDictError(
            f"{MODEL_NAME}: the checkpoint's adjacency buffer 'A' {stored.shape} differs from "
            f"the one built for strategy={module.strategy!r}, max_hop={module.max_hop}, "
            f"skeleton={resolve_skeleton(module.skeleton).name!r} "
            f"{adjacency.shape}{_matching_graph_hint(stored, module)}; pass the constructor "
            "arguments the checkpoint was trained with."
        )

    tree = VariableTree()
    tree.batch_norm("data_bn/bn", reader, "data_bn")
    for i in range(len(module.channels)):
        torch_prefix, ours = f"st_gcn_networks.{i}", f"st_gcn_{i}"
        tree.param(f"{ours}/gcn", reader.conv_as_dense(f"{torch_prefix}.gcn.conv"))
        tree.batch_norm(f"{ours}/tcn_bn1", reader, f"{torch_prefix}.tcn.0")
        tree.param(f"{ours}/tcn_conv", temporal_conv(reader, f"{torch_prefix}.tcn.2"))
        tree.batch_norm(f"{ours}/tcn_bn2", reader, f"{torch_prefix}.tcn.3")
        if f"{torch_prefix}.residual.0.weight" in reader:
            tree.param(f"{ours}/residual/conv", temporal_conv(reader, f"{torch_prefix}.residual.0"))
            tree.batch_norm(f"{ours}/residual/bn", reader, f"{torch_prefix}.residual.1")
        if module.edge_importance:
            tree.param(f"edge_importance_{i}", reader.get(f"edge_importance.{i}"))
    tree.param("fcn", reader.conv_as_dense("fcn"))
    reader.finish()

    variables = tree.variables()
    check_variables(MODEL_NAME, variables, module, example_input_for(module))
    return module, jax.tree.map(jnp.asarray, variables)
