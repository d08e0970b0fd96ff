"""Shift-GCN (Cheng et al., CVPR 2020), one stream, as a pure Flax Linen module.

A port of the authors' ``model/shift_gcn.py`` and of their CUDA temporal shift
op (``model/Temporal_shift/cuda``) from kchengiva/Shift-GCN (commit 20276b6).
Given the authors' weights through ``from_torch`` it reproduces their logits,
which ``tests/test_shiftgcn.py`` checks.

The network, for one body of ``T`` frames, ``V`` joints and ``C`` channels::

    data BatchNorm over (M, V, C), statistics over clips and frames
    10 units, each  relu( ShiftTCN(ShiftGCN(x)) + residual(x) ):
      ShiftGCN  (spatial): non-local spatial shift in, feature mask, per-joint
                linear C -> C', spatial shift out, BatchNorm over (V, C'),
                plus a 1x1 conv + BN "down" path when C != C', ReLU
      ShiftTCN  (temporal): BN, adaptive temporal shift, 1x1 conv, ReLU,
                adaptive temporal shift with stride, BN
    mean over frames and joints, then over bodies; Linear -> logits

Layout: the public input is ``(N, M, T, V, C)``. Inside, bodies are folded
into the batch, ``(B, T, V, C)`` with ``B = N * M``, channels last: every
operation of Shift-GCN is pointwise in time (the only temporal mixing is the
shift op), so no convolution over ``T`` exists to prefer a joints-major layout.

Frame counts: the shift op keeps ``T // stride`` frames while the strided
1x1 residual conv keeps ``ceil(T / stride)``. The original therefore raises
a shape error unless ``T`` is divisible by the product of strides (4 with the
published strides); here the residual's surplus last frame is dropped
instead, which agrees with the original wherever the original runs.

Training: ``temporal_shift`` reproduces the CUDA op's gradient rule (sign-only
steps for the frame shifts, none for the joint shifts; see ``ops.shift``). The
authors' ``main.py`` gives ``Linear_weight`` a weight decay of 1e-3 and
``Feature_Mask`` none (1e-4 elsewhere): with ``smg_jax.train.optim`` that is
``weight_decay_rules="linear_weight=1e-3,feature_mask=0"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.graph import Skeleton
from smg_jax.models import build_module, example_input_for, layers, resolve_skeleton
from smg_jax.models.convert import (
    StateDictError,
    StateDictReader,
    VariableTree,
    check_variables,
    infer_num_persons,
)
from smg_jax.models.ops.shift import (
    spatial_shift,
    spatial_shift_indices,
    subsample_frames,
    temporal_shift,
)

MODEL_NAME = "shiftgcn"
Array = jax.Array
Dtype = Any

DEFAULT_CHANNELS = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
DEFAULT_STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)


# ---------------------------------------------------------------------------
# Blocks, in the (B, T, V, C) layout.
# ---------------------------------------------------------------------------


class TemporalShift(nn.Module):
    """The learnable shift (the authors' ``Shift`` module): ``xpos``, ``ypos`` per channel.

    ``(B, T, V, C) -> (B, T // stride, V, C)``; see ``temporal_shift``.
    """

    stride: int = 1
    init_scale: float = 1.0
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        shape = (x.shape[-1],)
        xpos = self.param("xpos", layers.uniform(1e-8), shape, self.param_dtype)
        ypos = self.param("ypos", layers.uniform(self.init_scale), shape, self.param_dtype)
        return temporal_shift(x, xpos, ypos, self.stride)


class ShiftGraphConv(nn.Module):
    """The spatial Shift-GCN layer (the authors' ``Shift_gcn``).

    ``(B, T, V, C) -> (B, T, V, features)``: spatial shift in, features scaled
    by ``tanh(mask) + 1`` (mask per joint and channel, initialised to 0), a
    linear map shared by all joints, spatial shift out, BatchNorm over the
    ``V * features`` (joint, channel) pairs, plus the input (through a 1x1
    conv + BN "down" path when the width changes), ReLU.
    """

    features: int
    spatial_shift: bool = True
    feature_mask: bool = True
    bn_axis_name: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        v, c = x.shape[-2:]
        h = spatial_shift(x, +1) if self.spatial_shift else x
        if self.feature_mask:
            mask = self.param("feature_mask", layers.zeros, (v, c), self.param_dtype)
            h = h * (jnp.tanh(mask) + 1).astype(self.dtype)
        weight = self.param(
            "linear_weight",
            layers.normal(0.0, math.sqrt(1.0 / self.features)),
            (c, self.features),
            self.param_dtype,
        )
        bias = self.param("linear_bias", layers.zeros, (self.features,), self.param_dtype)
        h = h @ weight.astype(self.dtype) + bias.astype(self.dtype)
        if self.spatial_shift:
            h = spatial_shift(h, -1)
        # BatchNorm1d(V * features) over the (B * T, V * features) rows.
        h = layers.module_batch_norm(self, "bn")(
            h.reshape(*h.shape[:-2], v * self.features), train
        ).reshape(h.shape)
        if c != self.features:
            down = self._conv1x1("down_conv", x)
            down = layers.module_batch_norm(self, "down_bn")(down, train)
        else:
            down = x
        return nn.relu(h + down)

    def _conv1x1(self, name: str, x: Array) -> Array:
        # conv_init: kaiming_normal(fan_out) weights, zero bias.
        return nn.Dense(
            self.features,
            kernel_init=layers.kaiming_fan_out(self.features),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=name,
        )(x)


class ShiftTemporalConv(nn.Module):
    """The temporal Shift-TCN layer (the authors' ``Shift_tcn``).

    ``(B, T, V, C) -> (B, T // stride, V, features)``: BN, adaptive temporal
    shift, 1x1 conv, ReLU, adaptive temporal shift with stride, BN.
    ``temporal_shift=False`` replaces both shifts by plain frame subsampling.
    """

    features: int
    stride: int = 1
    temporal_shift: bool = True
    shift_init_scale: float = 1.0
    bn_axis_name: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        h = layers.module_batch_norm(self, "bn")(x, train)
        if self.temporal_shift:
            h = TemporalShift(1, self.shift_init_scale, self.param_dtype, name="shift_in")(h)
        h = nn.Dense(
            self.features,
            kernel_init=layers.kaiming_fan_out(self.features),
            # No conv_init here upstream: PyTorch's default bias.
            bias_init=layers.torch_linear_bias(x.shape[-1]),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="temporal_linear",
        )(h)
        h = nn.relu(h)
        if self.temporal_shift:
            shift_out = TemporalShift(
                self.stride, self.shift_init_scale, self.param_dtype, name="shift_out"
            )
            h = shift_out(h)
        else:
            h = subsample_frames(h, self.stride)
        return layers.module_batch_norm(self, "bn2")(h, train)


class ShiftUnit(nn.Module):
    """One Shift-GCN unit (the authors' ``TCN_GCN_unit``).

    ``relu(tcn1(gcn1(x)) + residual(x))``; the residual is zero (first unit),
    the identity, or a strided 1x1 conv + BN when width or stride change.
    """

    features: int
    stride: int = 1
    residual: bool = True
    spatial_shift: bool = True
    temporal_shift: bool = True
    shift_init_scale: float = 1.0
    feature_mask: bool = True
    bn_axis_name: str | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        common = {
            "bn_axis_name": self.bn_axis_name,
            "dtype": self.dtype,
            "param_dtype": self.param_dtype,
        }
        h = ShiftGraphConv(
            self.features,
            spatial_shift=self.spatial_shift,
            feature_mask=self.feature_mask,
            name="gcn1",
            **common,
        )(x, train)
        h = ShiftTemporalConv(
            self.features,
            stride=self.stride,
            temporal_shift=self.temporal_shift,
            shift_init_scale=self.shift_init_scale,
            name="tcn1",
            **common,
        )(h, train)
        if not self.residual:
            return nn.relu(h)
        if x.shape[-1] == self.features and self.stride == 1:
            return nn.relu(h + x)
        # The original's tcn(kernel_size=1, stride): conv_init conv + BN.
        res = nn.Dense(
            self.features,
            kernel_init=layers.kaiming_fan_out(self.features),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="residual_conv",
        )(x[:, :: self.stride])
        res = layers.module_batch_norm(self, "residual_bn")(res, train)
        # ceil(T / stride) frames here, T // stride in the shift path (see module doc).
        return nn.relu(h + res[:, : h.shape[1]])


# ---------------------------------------------------------------------------
# The network.
# ---------------------------------------------------------------------------


class ShiftGCN(nn.Module):
    """Shift-GCN, one stream (the authors' ``model.shift_gcn.Model``).

    Call: ``x`` ``(N, M, T, V, C)`` -> ``(N, num_classes)`` float32 logits;
    the pooled ``(N, C_last)`` features are sown as
    ``intermediates/features``. ``T`` divisible by the product of
    ``strides`` matches the original exactly (see the module docstring).

    Attributes:
      num_classes: classifier size.
      num_persons: bodies per clip ``M`` (SMG: 1; the NTU recipes: 2). The
        input BatchNorm has ``M * V * C`` channels, so weights depend on it.
      in_channels: coordinates per joint ``C``.
      skeleton: joint layout (name or ``Skeleton``); only ``V`` is used (the
        original hard-codes 25 joints).
      channels: output width of each unit.
      strides: temporal stride of each unit.
      spatial_shift: the non-local spatial shift in and out of each ShiftGCN
        layer (off: a plain per-joint linear map).
      temporal_shift: the adaptive temporal shifts of each ShiftTCN layer
        (off: frame subsampling only, no temporal context at all).
      feature_mask: the learnable ``tanh(mask) + 1`` feature mask.
      shift_init_scale: ``ypos`` starts ``U(-s, s)`` (the model passes 1).
      bn_axis_name: axis for cross-replica BatchNorm statistics.
      dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay ``param_dtype``.
    """

    num_classes: int
    num_persons: int = 1
    in_channels: int = 3
    skeleton: str | Skeleton = "kinect_v2"
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    strides: tuple[int, ...] = DEFAULT_STRIDES
    spatial_shift: bool = True
    temporal_shift: bool = True
    feature_mask: bool = True
    shift_init_scale: float = 1.0
    bn_axis_name: str | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        """``x (N, M, T, V, C)`` -> logits ``(N, num_classes)`` (float32)."""
        layers.check_units(MODEL_NAME, self.channels, self.strides)

        def units(x: Array) -> Array:
            x = x.transpose(0, 2, 1, 3)  # (B, V, T, C) -> (B, T, V, C)
            for index, (features, stride) in enumerate(
                zip(self.channels, self.strides, strict=True)
            ):
                x = ShiftUnit(
                    features,
                    stride=stride,
                    residual=index > 0,
                    spatial_shift=self.spatial_shift,
                    temporal_shift=self.temporal_shift,
                    feature_mask=self.feature_mask,
                    shift_init_scale=self.shift_init_scale,
                    **layers.unit_options(self),
                    name=f"l{index + 1}",
                )(x, train)
            return x  # pooled over frames and joints alike

        return layers.backbone(
            self, MODEL_NAME, x, train, units,
            num_joints=resolve_skeleton(self.skeleton).num_joints, num_persons=self.num_persons,
        )  # fmt: skip


def build(*, num_classes: int, **overrides: Any) -> ShiftGCN:
    """Shift-GCN with the published configuration, changed by ``overrides`` (see ``ShiftGCN``)."""
    return build_module(ShiftGCN, MODEL_NAME, num_classes, overrides)


# ---------------------------------------------------------------------------
# The authors' weights.
# ---------------------------------------------------------------------------


def from_torch(
    state_dict: Mapping[str, Any], *, num_classes: int, **overrides: Any
) -> tuple[ShiftGCN, dict[str, Any]]:
    """Maps a ``model.shift_gcn.Model`` ``state_dict`` onto ``ShiftGCN``.

    ``num_persons`` is read off ``data_bn`` unless given. The fixed
    spatial-shift index arrays (``gcn1.shift_in`` / ``shift_out``, registered
    as non-trainable parameters upstream) are rebuilt by the model; the
    checkpoint's must equal them.

    Returns:
      ``(module, {"params": ..., "batch_stats": ...})``.

    Raises:
      StateDictError: missing, unused or mis-shaped entries, or index arrays
        other than the published permutations.
    """
    reader = StateDictReader(state_dict, MODEL_NAME)
    module = build(num_classes=num_classes, **infer_num_persons(reader, ShiftGCN, overrides))
    v = resolve_skeleton(module.skeleton).num_joints
    tree = VariableTree()
    tree.batch_norm("data_bn/bn", reader, "data_bn")
    width = module.in_channels
    for index, (features, stride) in enumerate(zip(module.channels, module.strides, strict=True)):
        name = f"l{index + 1}"
        gcn, tcn = f"{name}/gcn1", f"{name}/tcn1"
        tree.param(f"{gcn}/linear_weight", reader.get(f"{name}.gcn1.Linear_weight"))
        tree.param(f"{gcn}/linear_bias", reader.get(f"{name}.gcn1.Linear_bias").reshape(-1))
        if module.feature_mask:
            tree.param(f"{gcn}/feature_mask", reader.get(f"{name}.gcn1.Feature_Mask")[0])
        tree.batch_norm(f"{gcn}/bn", reader, f"{name}.gcn1.bn")
        if width != features:
            tree.param(f"{gcn}/down_conv", reader.conv_as_dense(f"{name}.gcn1.down.0"))
            tree.batch_norm(f"{gcn}/down_bn", reader, f"{name}.gcn1.down.1")
        for key, size, direction in (("shift_in", width, +1), ("shift_out", features, -1)):
            entry = f"{name}.gcn1.{key}"
            expected = spatial_shift_indices(v, size, direction)
            if not np.array_equal(reader.get(entry, expected.shape), expected):
                raise StateDictError(
                    f"{MODEL_NAME}: {entry} differs from the spatial shift permutation this "
                    "model rebuilds; the checkpoint comes from a different Shift-GCN variant."
                )
        tree.batch_norm(f"{tcn}/bn", reader, f"{name}.tcn1.bn")
        tree.param(f"{tcn}/temporal_linear", reader.conv_as_dense(f"{name}.tcn1.temporal_linear"))
        tree.batch_norm(f"{tcn}/bn2", reader, f"{name}.tcn1.bn2")
        if module.temporal_shift:
            for key in ("shift_in", "shift_out"):
                for position in ("xpos", "ypos"):
                    value = reader.get(f"{name}.tcn1.{key}.{position}")
                    tree.param(f"{tcn}/{key}/{position}", value)
        if index > 0 and (width != features or stride != 1):
            tree.param(f"{name}/residual_conv", reader.conv_as_dense(f"{name}.residual.conv"))
            tree.batch_norm(f"{name}/residual_bn", reader, f"{name}.residual.bn")
        width = features
    tree.param("fc", reader.linear("fc"))
    reader.finish()

    variables = tree.variables()
    check_variables(MODEL_NAME, variables, module, example_input_for(module))
    return module, jax.tree.map(jnp.asarray, variables)
