"""Shift-GCN's shifts: the adaptive temporal shift (the authors' CUDA op) and the spatial one.

The temporal shift, for input ``(B, T, V, C)`` and per-channel positions
``(x_c, y_c)``, samples each channel's ``(T, V)`` plane bilinearly at ``(t *
stride + y_c, v + x_c)`` (zeros outside) and trains with the CUDA op's
gradient rule (sign-only steps for the frame shifts, none for the joint
shifts). The spatial shift is a fixed permutation of the ``(V, C)`` features.
Fast paths and references are described at each op.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.models.ops.switch import reference_enabled

Array = jax.Array
Dtype = Any

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
# Fast paths. Inference (the op's primal): a per-channel gather along frames
# is the slowest thing XLA's CPU backend does here, so whenever every channel's
# integer offset lies in a small window (where Shift-GCN's shifts live), the
# 2-tap interpolation is a weighted sum of a few static slices, which XLA fuses
# into one loop; otherwise a general gather runs (lax.cond). Training (the
# custom VJP): per channel the interpolation along an axis is a sparse matrix
# (two entries per row), so each channel's (T, V) plane is multiplied by a
# joint matrix J_c and a frame matrix S_c, as batched matmuls over channels in
# a channel-major (C, T, B, V) layout, forward and backward, for any offsets;
# its backward fuses far better than the slice sums', while for the forward
# alone the slice sums stay ahead inside the whole model.
#
# Reference: the gather for the forward, autodiff of it for the backward,
# then the same constraint on the ypos gradient. All paths give the kernel's
# numbers up to float rounding (the matrices hold exact zeros besides the two
# taps).

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
    if reference_enabled():
        return _reference_shift(x, xpos, ypos, stride)
    return _fast_shift(x, xpos, ypos, stride)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _fast_shift(x: Array, xpos: Array, ypos: Array, stride: int) -> Array:
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
    return _channels_last(grad_x), jnp.zeros_like(xpos), _constrained(raw).astype(ypos.dtype)


def _constrained(raw: Array) -> Array:
    """applyShiftConstraint: keep the sign only (NaN stays NaN)."""
    return jnp.where(raw != 0, jnp.sign(raw) * YPOS_STEP, YPOS_ZERO_STEP)


_fast_shift.defvjp(_temporal_shift_fwd, _temporal_shift_bwd)


def _gather_sample(x: Array, xpos: Array, ypos: Array, stride: int) -> Array:
    joint_shift, frame_shift = _shift_positions(xpos, ypos, stride)
    kx, fx = _split(joint_shift)
    ky, fy = _split(frame_shift)
    return _gather_forward(x, kx, fx, ky, fy, stride=stride)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _reference_shift(x: Array, xpos: Array, ypos: Array, stride: int) -> Array:
    return _gather_sample(x, xpos, ypos, stride)


def _reference_shift_fwd(x: Array, xpos: Array, ypos: Array, stride: int):
    return _gather_sample(x, xpos, ypos, stride), (x, xpos, ypos)


def _reference_shift_bwd(stride: int, residuals: tuple[Array, Array, Array], g: Array):
    x, xpos, ypos = residuals
    _, vjp = jax.vjp(lambda x, ypos: _gather_sample(x, xpos, ypos, stride), x, ypos)
    grad_x, raw = vjp(g)
    raw = raw.astype(jnp.float32) / g.shape[0]
    return grad_x, jnp.zeros_like(xpos), _constrained(raw).astype(ypos.dtype)


_reference_shift.defvjp(_reference_shift_fwd, _reference_shift_bwd)


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

    Autodiff (the reference) differentiates the gather with a scatter-add,
    which XLA's CPU backend runs far slower than a gather; the adjoint of a
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
    flat = x.reshape(*lead, v * c)
    if reference_enabled():
        index = spatial_shift_indices(v, c, direction)
        return jnp.take(flat, index, axis=-1).reshape(*lead, v, c)
    return _joint_channel_permutation(v, c, direction)(flat).reshape(*lead, v, c)
