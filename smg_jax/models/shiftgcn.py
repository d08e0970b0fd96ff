"""Shift-GCN (Cheng et al., CVPR 2020), one stream, as a pure Flax Linen module.

A port of the authors' ``model/shift_gcn.py`` and of their CUDA temporal shift
op (``model/Temporal_shift/cuda``) from kchengiva/Shift-GCN (commit 20276b6).
Given the authors' weights through ``from_torch`` it reproduces their logits;
``tests/test_shiftgcn.py`` checks this against ``../shared/golden``.

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
steps for the frame shifts, none for the joint shifts; see below). The
authors' ``main.py`` gives ``Linear_weight`` a weight decay of 1e-3 and
``Feature_Mask`` none (1e-4 elsewhere): with ``smg_jax.train.optim`` that is
``weight_decay_rules="linear_weight=1e-3,feature_mask=0"``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.graph import Skeleton
from smg_jax.models import blocks
from smg_jax.models.convert import StateDictError, StateDictReader, VariableTree, check_variables

MODEL_NAME = "shiftgcn"
Array = jax.Array
Dtype = Any

DEFAULT_CHANNELS = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
DEFAULT_STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)


def symmetric_uniform(bound: float) -> blocks.Initializer:
    """``U(-bound, bound)`` (the shift positions' ``uniform_(-s, s)``)."""

    def init(key: Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> Array:
        return jax.random.uniform(key, shape, jnp.float32, -bound, bound).astype(dtype)

    return init


# ---------------------------------------------------------------------------
# The adaptive temporal shift op (the authors' CUDA kernel, in JAX).
# ---------------------------------------------------------------------------
#
# Forward (shift_cuda_forward_kernel): for input (B, T, V, C) and per-channel
# positions (x_c, y_c), output frame t, joint v of channel c is the bilinear
# sample of that channel's (T, V) plane at (t * stride + y_c, v + x_c), with
# zeros outside the plane; y_c is ypos_c + 0.5 when stride > 1 (ShiftFunction);
# the output keeps T // stride frames. Bilinear sampling is separable, so it
# is done as a 2-tap interpolation along joints, then along frames.
#
# Backward (shift_cuda_backward):
#   * input: the exact adjoint of the forward sampling (the kernels gather the
#     output gradient at the reversed positions), i.e. what autodiff gives.
#   * ypos: per channel G_c = mean over the batch, sum over (t, v) of
#     grad_out * d(out)/d(y_c); then applyShiftConstraint replaces it with
#     0.01 * sign(G_c), or 1e-4 where G_c == 0 exactly. Autodiff would give G_c
#     summed (not averaged) over the batch, unnormalised.
#   * xpos: applyShiftConstraint multiplies it by 0: xpos is a parameter
#     (trainable, counted, weight-decayed) whose gradient is always zero.
# Under data parallelism the sign is taken per device before gradients are
# averaged, as with the original under nn.DataParallel.
#
# Speed. Inference (the op's primal): a per-channel gather along frames is the
# slowest thing XLA's CPU backend does here, so whenever every channel's
# integer offset lies in a small window (where Shift-GCN's shifts live), the
# 2-tap interpolation is a weighted sum of a few static slices, which XLA fuses
# into one loop; otherwise a general gather runs (lax.cond). Training (the
# custom VJP): per channel the interpolation along an axis is a sparse matrix
# (two entries per row), so each channel's (T, V) plane is multiplied by a
# joint matrix J_c and a frame matrix S_c, as batched matmuls over channels in
# a channel-major (C, T, B, V) layout, forward and backward, for any offsets.
# On 2 CPU cores that ran forward + backward 3.5-5x faster than the slice sums
# (whose backward fused poorly), while for the forward alone the slice sums
# stay ahead inside the whole model. All paths give the kernel's numbers up to
# float rounding (the matrices hold exact zeros besides the two taps).

YPOS_STEP = 0.01  # |grad ypos| after applyShiftConstraint
YPOS_ZERO_STEP = 1e-4  # grad ypos where the raw gradient is exactly zero
FAST_FRAME_OFFSETS = 3  # integer frame offsets in [-3, 3] take the static-slice path
FAST_JOINT_OFFSETS = 1  # integer joint offsets in [-1, 1] take the static-slice path


def _split(shift: Array) -> tuple[Array, Array]:
    """``(floor(shift) as int32, shift - floor(shift))``, as the kernel computes them."""
    floor = jnp.floor(shift)
    return floor.astype(jnp.int32), shift - floor


def _tap_weights(offset: Array, frac: Array, radius: int, dtype: Dtype) -> tuple[Array, Array]:
    """Per-channel weights of taps ``-radius .. radius + 1`` and their derivative in ``frac``.

    Tap ``offset`` gets ``1 - frac``, tap ``offset + 1`` gets ``frac``, the
    others 0 (``offset`` must lie in ``[-radius, radius]``). Shapes ``(n, C)``.
    """
    taps = jnp.arange(-radius, radius + 2)[:, None]
    first, second = taps == offset[None, :], taps == offset[None, :] + 1
    frac = frac.astype(dtype)[None, :]
    weights = jnp.where(first, 1 - frac, 0) + jnp.where(second, frac, 0)
    slopes = second.astype(dtype) - first.astype(dtype)
    return weights.astype(dtype), slopes


def _tap_sum(x: Array, weights: Array, stride: int, axis: int, first: int, out_len: int) -> Array:
    """``out[o] = sum_i weights[i] x[o stride + first + i]``, zero where the index leaves ``x``.

    A weighted sum of ``len(weights)`` static strided slices, which XLA fuses
    into one vectorised loop. (A zero weight times an inf input would give NaN
    where the kernel reads only its four corners; finite inputs are unaffected.)
    """
    n, length = weights.shape[0], x.shape[axis]
    last = (out_len - 1) * stride + first + n - 1  # highest index read
    pad = [(0, 0)] * x.ndim
    pad[axis] = (max(0, -first), max(0, last - length + 1))
    padded = jnp.pad(x, pad)
    shape = [1] * x.ndim
    shape[-1] = weights.shape[-1]
    out = None
    for i in range(n):
        start = first + i + pad[axis][0]
        tap = jax.lax.slice_in_dim(padded, start, start + (out_len - 1) * stride + 1, stride, axis)
        term = weights[i].reshape(shape) * tap
        out = term if out is None else out + term
    return out


def _lerp_gather(x: Array, offset: Array, frac: Array, stride: int, axis: int) -> Array:
    """The same interpolation for any offsets, with a masked gather."""
    length = x.shape[axis]
    out_len = length // stride
    first = jnp.arange(out_len)[:, None] * stride + offset[None, :]  # (out_len, C)
    shape = [1] * x.ndim
    shape[axis], shape[-1] = out_len, first.shape[-1]
    zero = jnp.zeros((), x.dtype)
    frac = frac.astype(x.dtype)
    out = None
    for tap, weight in ((0, 1 - frac), (1, frac)):
        index = first + tap
        inside = ((index >= 0) & (index < length)).reshape(shape)
        index = jnp.clip(index, 0, length - 1).reshape(shape)
        value = jnp.where(inside, jnp.take_along_axis(x, index, axis=axis, mode="clip"), zero)
        out = weight * value if out is None else out + weight * value
    return out


def _shift_positions(xpos: Array, ypos: Array, stride: int) -> tuple[Array, Array]:
    # ShiftFunction.forward adds 0.5 to ypos (in float32) when stride > 1.
    return xpos, (ypos + 0.5) if stride > 1 else ypos


def _lerp_matrices(
    offset: Array, frac: Array, out_len: int, length: int, stride: int, dtype: Dtype
) -> tuple[Array, Array]:
    """Per channel, the interpolation as a matrix and its derivative in ``frac``.

    ``(C, out_len, length)``: row ``o`` holds ``1 - frac`` at ``o stride +
    offset`` and ``frac`` at the next index (where they fall inside ``[0,
    length)``); the derivative holds ``-1`` and ``+1`` there.
    """
    rows = jnp.arange(out_len)[None, :, None] * stride + offset[:, None, None]
    cols = jnp.arange(length)[None, None, :]
    first, second = cols == rows, cols == rows + 1
    frac = frac.astype(dtype)[:, None, None]
    matrix = jnp.where(first, 1 - frac, 0) + jnp.where(second, frac, 0)
    return matrix.astype(dtype), second.astype(dtype) - first.astype(dtype)


def _batched(a: Array, b: Array) -> Array:
    """``a @ b`` batched over the leading (channel) axis: ``(C, m, k), (C, k, n) -> (C, m, n)``."""
    return jax.lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,))))


def _shift_matrices(
    xpos: Array, ypos: Array, frames: int, joints: int, stride: int, dtype: Dtype
) -> tuple[Array, Array, Array]:
    """``(J^T (C, V, V), S (C, T', T), dS/dy (C, T', T))`` for the shifted positions."""
    joint_shift, frame_shift = _shift_positions(xpos, ypos, stride)
    kx, fx = _split(joint_shift)
    ky, fy = _split(frame_shift)
    joint, _ = _lerp_matrices(kx, fx, joints, joints, 1, dtype)
    frame, slope = _lerp_matrices(ky, fy, frames // stride, frames, stride, dtype)
    return jnp.swapaxes(joint, 1, 2), frame, slope


def _channel_major(x: Array) -> Array:
    """``(B, T, V, C) -> (C, T, B, V)``."""
    return jnp.transpose(x, (3, 1, 0, 2))


def _channels_last(x: Array) -> Array:
    """``(C, T, B, V) -> (B, T, V, C)``."""
    return jnp.transpose(x, (2, 1, 3, 0))


def _shift_channel_major(x: Array, joint_t: Array, frame: Array) -> tuple[Array, Array]:
    """``(C, T, B, V)`` -> (joints mixed ``(C, T, B V)``, output ``(C, T', B, V)``)."""
    c, t, b, v = x.shape
    joints = _batched(x.reshape(c, t * b, v), joint_t).reshape(c, t, b * v)
    out = _batched(frame, joints)
    return joints, out.reshape(c, frame.shape[1], b, v)


def _bilinear(x: Array, joint_shift: Array, frame_shift: Array, stride: int) -> Array:
    """The forward kernel at positions ``(t stride + frame_shift, v + joint_shift)``.

    Differentiable in ``x`` and in the fractional parts of the shifts (the
    integer parts are constants, as the kernel's ``floorf``).
    """
    kx, fx = _split(joint_shift)
    ky, fy = _split(frame_shift)
    return jax.lax.cond(
        _in_window(kx, ky),
        functools.partial(_fast_forward, stride=stride),
        functools.partial(_gather_forward, stride=stride),
        x,
        kx,
        fx,
        ky,
        fy,
    )


def _in_window(kx: Array, ky: Array) -> Array:
    return jnp.all(jnp.abs(kx) <= FAST_JOINT_OFFSETS) & jnp.all(jnp.abs(ky) <= FAST_FRAME_OFFSETS)


def _fast_forward(x: Array, kx: Array, fx: Array, ky: Array, fy: Array, *, stride: int) -> Array:
    """The static-slice path: along joints, then along frames."""
    t, v = x.shape[1], x.shape[2]
    wx, _ = _tap_weights(kx, fx, FAST_JOINT_OFFSETS, x.dtype)
    wy, _ = _tap_weights(ky, fy, FAST_FRAME_OFFSETS, x.dtype)
    joints = _tap_sum(x, wx, 1, 2, -FAST_JOINT_OFFSETS, v)
    return _tap_sum(joints, wy, stride, 1, -FAST_FRAME_OFFSETS, t // stride)


def _gather_forward(x: Array, kx: Array, fx: Array, ky: Array, fy: Array, *, stride: int) -> Array:
    return _lerp_gather(_lerp_gather(x, kx, fx, 1, 2), ky, fy, stride, 1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def temporal_shift(x: Array, xpos: Array, ypos: Array, stride: int = 1) -> Array:
    """Shift-GCN's adaptive temporal shift, with the CUDA op's gradient rule.

    Args:
      x: ``(B, T, V, C)`` features.
      xpos: ``(C,)`` float32 shift along joints (the original initialises it
        to ``U(-1e-8, 1e-8)``; its gradient is always zero, see above).
      ypos: ``(C,)`` float32 learnable shift along frames, in frames.
      stride: temporal stride (1 or 2 in Shift-GCN; any positive integer here).

    Returns:
      ``(B, T // stride, V, C)``: per channel ``c``, the bilinear sample of the
      ``(T, V)`` plane at ``(t * stride + y_c, v + x_c)``, zero outside, with
      ``y_c = ypos_c + 0.5`` when ``stride > 1``.
    """
    if stride < 1:
        raise ValueError(f"temporal_shift: stride must be >= 1, got {stride}.")
    return _bilinear(x, *_shift_positions(xpos, ypos, stride), stride)


def _temporal_shift_fwd(
    x: Array, xpos: Array, ypos: Array, stride: int
) -> tuple[Array, tuple[Array, Array, Array]]:
    if stride < 1:
        raise ValueError(f"temporal_shift: stride must be >= 1, got {stride}.")
    _, t, v, _ = x.shape
    joint_t, frame, _ = _shift_matrices(xpos, ypos, t, v, stride, x.dtype)
    joints, out = _shift_channel_major(_channel_major(x), joint_t, frame)
    return _channels_last(out), (joints, xpos, ypos)


def _temporal_shift_bwd(
    stride: int, residuals: tuple[Array, Array, Array], g: Array
) -> tuple[Array, Array, Array]:
    joints, xpos, ypos = residuals  # joints: (C, T, B V), the input mixed along joints
    b, out_len, v, c = g.shape
    t = joints.shape[1]
    joint_t, frame, slope = _shift_matrices(xpos, ypos, t, v, stride, g.dtype)
    g_flat = _channel_major(g).reshape(c, out_len, b * v)
    # raw: d out / d y summed over batch, frames and joints (the kernel's G_c times B).
    slopes = _batched(slope, joints)
    raw = jnp.sum(g_flat.astype(jnp.float32) * slopes.astype(jnp.float32), axis=(1, 2))
    # The input gradient is the exact adjoint of the sampling: S^T, then J.
    g_joints = _batched(jnp.swapaxes(frame, 1, 2), g_flat).reshape(c, t * b, v)
    grad_x = _batched(g_joints, jnp.swapaxes(joint_t, 1, 2)).reshape(c, t, b, v)
    raw = raw / b  # at::mean over the batch
    # applyShiftConstraint: keep the sign only (NaN stays NaN).
    grad_ypos = jnp.where(raw != 0, jnp.sign(raw) * YPOS_STEP, YPOS_ZERO_STEP)
    return _channels_last(grad_x), jnp.zeros_like(xpos), grad_ypos.astype(ypos.dtype)


temporal_shift.defvjp(_temporal_shift_fwd, _temporal_shift_bwd)


def subsample_frames(x: Array, stride: int) -> Array:
    """Frames ``0, stride, 2 stride, ...`` of ``(B, T, ...)``, ``T // stride`` of them.

    What the shift op does at zero shift; used when the temporal shift is ablated.
    """
    return x[:, : (x.shape[1] // stride) * stride : stride]


# ---------------------------------------------------------------------------
# The non-local spatial shift (fixed index permutations).
# ---------------------------------------------------------------------------


def spatial_shift_indices(num_joints: int, channels: int, direction: int) -> np.ndarray:
    """The original's ``shift_in`` (``direction=+1``) / ``shift_out`` (``-1``) arrays.

    ``(V * C,)`` int64 indices into the joint-major flattened ``(V, C)``
    features: output joint ``i``, channel ``j`` reads joint
    ``(i + direction * j) mod V``, channel ``j``. So channel ``j`` of every joint
    gathers from the joint ``j`` steps along (shift in) and is sent back
    ``j`` steps (shift out).
    """
    joint = np.arange(num_joints)[:, None]
    channel = np.arange(channels)[None, :]
    flat = joint * channels + channel + direction * channel * channels
    return (flat % (num_joints * channels)).reshape(-1).astype(np.int64)


@functools.cache
def _joint_channel_permutation(num_joints: int, channels: int, direction: int) -> Any:
    """``x -> x[..., index]`` on the flattened ``(V * C)`` axis, differentiated by a gather.

    Autodiff would differentiate the gather with a scatter-add, which XLA's CPU
    backend runs about 20 times slower than the gather; the adjoint of a
    permutation is the inverse permutation, another gather.
    """
    index = spatial_shift_indices(num_joints, channels, direction)
    inverse = np.argsort(index)

    @jax.custom_vjp
    def permute(flat: Array) -> Array:
        return jnp.take(flat, index, axis=-1, mode="clip")

    def fwd(flat: Array) -> tuple[Array, None]:
        return permute(flat), None

    def bwd(_: None, g: Array) -> tuple[Array]:
        return (jnp.take(g, inverse, axis=-1, mode="clip"),)

    permute.defvjp(fwd, bwd)
    return permute


def spatial_shift(x: Array, direction: int) -> Array:
    """Applies ``spatial_shift_indices`` to ``(..., V, C)`` features."""
    *lead, v, c = x.shape
    permute = _joint_channel_permutation(v, c, direction)
    return permute(x.reshape(*lead, v * c)).reshape(*lead, v, c)


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
        xpos = self.param("xpos", symmetric_uniform(1e-8), shape, self.param_dtype)
        ypos = self.param("ypos", symmetric_uniform(self.init_scale), shape, self.param_dtype)
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
            mask = self.param("feature_mask", blocks.zeros, (v, c), self.param_dtype)
            h = h * (jnp.tanh(mask) + 1).astype(self.dtype)
        weight = self.param(
            "linear_weight",
            blocks.normal(0.0, math.sqrt(1.0 / self.features)),
            (c, self.features),
            self.param_dtype,
        )
        bias = self.param("linear_bias", blocks.zeros, (self.features,), self.param_dtype)
        h = h @ weight.astype(self.dtype) + bias.astype(self.dtype)
        if self.spatial_shift:
            h = spatial_shift(h, -1)
        # BatchNorm1d(V * features) over the (B * T, V * features) rows.
        h = self._bn("bn", h.reshape(*h.shape[:-2], v * self.features), train).reshape(h.shape)
        if c != self.features:
            down = self._conv1x1("down_conv", x)
            down = self._bn("down_bn", down, train)
        else:
            down = x
        return nn.relu(h + down)

    def _conv1x1(self, name: str, x: Array) -> Array:
        # conv_init: kaiming_normal(fan_out) weights, zero bias.
        return nn.Dense(
            self.features,
            kernel_init=blocks.kaiming_fan_out(self.features),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=name,
        )(x)

    def _bn(self, name: str, x: Array, train: bool) -> Array:
        return blocks.BatchNorm(
            axis_name=self.bn_axis_name, dtype=self.dtype, param_dtype=self.param_dtype, name=name
        )(x, train)


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
        h = self._bn("bn", x, train)
        if self.temporal_shift:
            h = TemporalShift(1, self.shift_init_scale, self.param_dtype, name="shift_in")(h)
        h = nn.Dense(
            self.features,
            kernel_init=blocks.kaiming_fan_out(self.features),
            # No conv_init here upstream: PyTorch's default bias.
            bias_init=blocks.torch_linear_bias(x.shape[-1]),
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
        return self._bn("bn2", h, train)

    def _bn(self, name: str, x: Array, train: bool) -> Array:
        return blocks.BatchNorm(
            axis_name=self.bn_axis_name, dtype=self.dtype, param_dtype=self.param_dtype, name=name
        )(x, train)


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
    feature_mask: bool = True
    shift_init_scale: float = 1.0
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
            kernel_init=blocks.kaiming_fan_out(self.features),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="residual_conv",
        )(x[:, :: self.stride])
        res = blocks.BatchNorm(
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="residual_bn",
        )(res, train)
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
        if len(self.channels) != len(self.strides):
            raise ValueError(f"{MODEL_NAME}: channels and strides must have the same length.")
        num_joints = blocks.resolve_skeleton(self.skeleton).num_joints
        blocks.check_input(MODEL_NAME, x, num_joints, self.in_channels, self.num_persons)
        num_clips = x.shape[0]
        dtype = self.dtype or jnp.float32
        # BatchNorm1d(M * V * C) with channel m*V*C + v*C + c, statistics over
        # clips and frames; then bodies fold into the batch.
        x = blocks.DataBatchNorm(
            bn_axis_name=self.bn_axis_name,
            dtype=dtype,
            param_dtype=self.param_dtype,
            name="data_bn",
        )(x.astype(jnp.float32), train)
        x = x.transpose(0, 2, 1, 3)  # (B, V, T, C) -> (B, T, V, C)
        for index, (features, stride) in enumerate(zip(self.channels, self.strides, strict=True)):
            x = ShiftUnit(
                features,
                stride=stride,
                residual=index > 0,
                spatial_shift=self.spatial_shift,
                temporal_shift=self.temporal_shift,
                feature_mask=self.feature_mask,
                shift_init_scale=self.shift_init_scale,
                bn_axis_name=self.bn_axis_name,
                dtype=dtype,
                param_dtype=self.param_dtype,
                name=f"l{index + 1}",
            )(x, train)
        # Mean over frames and joints, then over bodies (as the original).
        features = blocks.pool_bodies(x, num_clips)
        self.sow("intermediates", "features", features)
        logits = blocks.published_classifier(
            self.num_classes, features.shape[-1], dtype, self.param_dtype
        )(features.astype(dtype))
        return logits.astype(jnp.float32)


def build(*, num_classes: int, **overrides: Any) -> ShiftGCN:
    """Shift-GCN with the published configuration, changed by ``overrides`` (see ``ShiftGCN``)."""
    return blocks.build_module(ShiftGCN, MODEL_NAME, num_classes, overrides)


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
    module = build(num_classes=num_classes, **blocks.infer_num_persons(reader, ShiftGCN, overrides))
    v = blocks.resolve_skeleton(module.skeleton).num_joints
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
    check_variables(MODEL_NAME, variables, module, blocks.example_input_for(module))
    return module, jax.tree.map(jnp.asarray, variables)
