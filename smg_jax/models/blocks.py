"""Pieces that two or more skeleton models share.

Internal layout
---------------
Every model here takes the public ``(N, M, T, V, C)`` input and works
internally on ``(B, V, T, C)``: ``B = N * M`` skeleton sequences, joints
major, channels last. Folding joints into the batch is then a free reshape,
which makes the temporal convolution a 1-D convolution over frames, the
fastest formulation XLA's CPU backend offers (see ``shared/PERF.md``).
PyTorch's ``(N*M, C, T, V)`` channel ``c``, frame ``t``, joint ``v`` is our
``[:, v, t, c]``.

PyTorch conventions kept on purpose
-----------------------------------
* ``BatchNorm`` normalises with the biased batch variance but puts the
  *unbiased* one into its running average, and its ``momentum=0.1`` weighs
  the new batch; ``BatchNorm`` below does the same (``momentum=0.9`` in
  Flax's convention: the weight of the old average).
* Output lengths follow ``Conv2d``/``MaxPool2d`` arithmetic exactly:
  ``floor((T + 2 p - d (k - 1) - 1) / s) + 1``.
* The initialisers are the published ones (``kaiming_normal`` with
  ``fan_out``, ``normal(0, 0.02)``, constant BatchNorm scales, PyTorch's
  default ``Linear`` bias), as Flax initialisers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.graph import Skeleton, get_skeleton
from smg_jax.models import onednn_conv
from smg_jax.models.convert import (
    StateDictReader,
    VariableTree,
    check_overrides,
    temporal_conv,
)

Array = jax.Array
Dtype = Any
Initializer = Callable[..., Array]

# ---------------------------------------------------------------------------
# Initialisers (PyTorch's, written as Flax initialisers).
# ---------------------------------------------------------------------------


def normal(mean: float = 0.0, std: float = 1.0) -> Initializer:
    """``nn.init.normal_(w, mean, std)``: untruncated normal."""

    def init(key: Array, shape: Sequence[int], dtype: Dtype = jnp.float32) -> Array:
        return (mean + std * jax.random.normal(key, shape, jnp.float32)).astype(dtype)

    return init


def kaiming_fan_out(out_channels: int, kernel_size: int = 1) -> Initializer:
    """``nn.init.kaiming_normal_(w, mode='fan_out')`` of one ``Conv2d(., out, (k, 1))``.

    The standard deviation is ``sqrt(2 / (out * k))`` whatever shape the Flax
    kernel takes, so several PyTorch convolutions stacked into one kernel
    keep each its own published scale.
    """
    return normal(0.0, math.sqrt(2.0 / (out_channels * kernel_size)))


def torch_linear_bias(fan_in: int) -> Initializer:
    """PyTorch's default ``Linear``/``Conv`` bias: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: Array, shape: Sequence[int], dtype: Dtype = jnp.float32) -> Array:
        return jax.random.uniform(key, shape, jnp.float32, -bound, bound).astype(dtype)

    return init


def constant(value: float) -> Initializer:
    return nn.initializers.constant(value)


zeros = nn.initializers.zeros
ones = nn.initializers.ones


def conv_output_length(length: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1):
    """PyTorch's ``Conv2d``/``MaxPool2d`` output length along one axis."""
    return (length + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


# ---------------------------------------------------------------------------
# Normalisation.
# ---------------------------------------------------------------------------


def _feature_statistics(x: Array, axis_name: str | None) -> tuple[Array, Array]:
    """Mean and biased variance of ``x (..., C)`` over all axes but the last, across replicas."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    if axis_name is not None:
        mean = jax.lax.pmean(mean, axis_name)
    var = jnp.square(x - mean).mean(axes)
    if axis_name is not None:
        var = jax.lax.pmean(var, axis_name)
    return mean, var


def _global_count(x: Array, axis_name: str | None) -> Any:
    count = math.prod(x.shape[:-1])
    return count if axis_name is None else count * jax.lax.psum(1, axis_name)


def batch_norm_train(
    x: Array, scale: Array, bias: Array, epsilon: float, axis_name: str | None = None
) -> tuple[Array, Array, Array]:
    """Training-mode BatchNorm of float32 ``x (..., C)``: ``(y, mean, var)``, all float32.

    ``y = x a + (bias - mean a)`` with ``a = scale / sqrt(var + epsilon)``,
    PyTorch's CPU formula; ``mean`` and the biased ``var`` are per channel
    ``(C,)``, over every axis but the last and, with ``axis_name``, over the
    replicas too.

    Without ``axis_name`` the gradient is written out (``_local_batch_norm``):
    two reductions, then one pass ``dx = g a + x c1 + c0`` with per-channel
    ``c1``, ``c0``. The one autodiff derives from the statistics took more
    passes over the activations: 2.5 against 3.1 ms for forward + backward of
    a ``(16, 25, 60, 64)`` BatchNorm + ReLU on 2 CPU cores (PyTorch: 2.6).
    Across replicas autodiff differentiates the same formula, so that the
    cross-replica sums stay JAX's own (a custom gradient's collectives would
    need the mapped axis bound wherever the gradient is taken).
    """
    if axis_name is None:
        return _local_batch_norm(x, scale, bias, epsilon)
    return _batch_norm_forward(x, scale, bias, epsilon, axis_name)[0]


def _batch_norm_forward(x: Array, scale: Array, bias: Array, epsilon: float, axis_name: str | None):
    mean, var = _feature_statistics(x, axis_name)
    inv_std = jax.lax.rsqrt(var + epsilon)
    multiplier = scale * inv_std
    y = x * multiplier + (bias - mean * multiplier)
    return (y, mean, var), (x, mean, inv_std, scale)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _local_batch_norm(
    x: Array, scale: Array, bias: Array, epsilon: float
) -> tuple[Array, Array, Array]:
    return _batch_norm_forward(x, scale, bias, epsilon, None)[0]


def _local_batch_norm_fwd(x: Array, scale: Array, bias: Array, epsilon: float):
    return _batch_norm_forward(x, scale, bias, epsilon, None)


def _local_batch_norm_bwd(
    epsilon: float, residuals: tuple[Array, ...], cotangents
) -> tuple[Array, Array, Array]:
    del epsilon
    x, mean, inv_std, scale = residuals
    grad, grad_mean, grad_var = cotangents
    axes = tuple(range(x.ndim - 1))
    count = math.prod(x.shape[:-1])
    # A distinct ``mean`` keeps XLA from sharing ``x - mean`` with the forward
    # variance, which would write it out at full size to keep it until here.
    mean = jax.lax.optimization_barrier(mean)
    sum_grad = grad.sum(axes)
    sum_grad_centred = (grad * (x - mean)).sum(axes)
    multiplier = scale * inv_std
    # dx = a g - a (sum g + (x - mean) inv_std^2 sum g (x - mean)) / n
    #      + (grad_mean + 2 grad_var (x - mean)) / n
    slope = (2.0 * grad_var - multiplier * inv_std * inv_std * sum_grad_centred) / count
    offset = (grad_mean - multiplier * sum_grad) / count - mean * slope
    # Finished per-channel vectors: otherwise XLA:CPU fuses their last multiply
    # into a broadcast and writes it out at full activation size (about 15 %
    # of this BatchNorm's forward + backward on 2 cores).
    multiplier, slope, offset = jax.lax.optimization_barrier((multiplier, slope, offset))
    dx = grad * multiplier + x * slope + offset
    return dx, sum_grad_centred * inv_std, sum_grad


_local_batch_norm.defvjp(_local_batch_norm_fwd, _local_batch_norm_bwd)


class BatchNorm(nn.Module):
    """``torch.nn.BatchNorm{1,2}d`` over the last axis, statistics over all others.

    Training mode runs ``batch_norm_train`` (float32 statistics; a hand-written
    gradient within one replica); evaluation normalises with the running
    averages.

    Attributes:
      momentum: Flax convention, the weight of the old running average
        (PyTorch's ``momentum=0.1`` is ``0.9`` here).
      epsilon: added to the variance (PyTorch's ``eps=1e-5``).
      scale_init: initial ``weight`` (1, 1e-6 for the zero-initialised
        residual branches, ``N(1, 0.02)`` in ST-GCN's recipe).
      axis_name: a ``pmap``/``shard_map`` axis to average statistics over
        (cross-replica BatchNorm); ``None`` keeps them per device.
      dtype: dtype of the output; statistics are always float32.
      param_dtype: dtype of ``scale``/``bias``.
    """

    momentum: float = 0.9
    epsilon: float = 1e-5
    scale_init: Initializer = ones
    axis_name: str | None = None
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        features = x.shape[-1]
        scale = self.param("scale", self.scale_init, (features,), self.param_dtype)
        bias = self.param("bias", zeros, (features,), self.param_dtype)
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)

        xf = x.astype(jnp.float32)
        scale, bias = scale.astype(jnp.float32), bias.astype(jnp.float32)
        if train:
            y, mean, var = batch_norm_train(xf, scale, bias, self.epsilon, self.axis_name)
            if not self.is_initializing():
                count = _global_count(x, self.axis_name)
                # PyTorch keeps the unbiased variance in its running average.
                unbiased = var * (count / jnp.maximum(count - 1, 1))
                keep = self.momentum
                running_mean.value = keep * running_mean.value + (1 - keep) * mean
                running_var.value = keep * running_var.value + (1 - keep) * unbiased
        else:
            multiplier = scale * jax.lax.rsqrt(running_var.value + self.epsilon)
            y = (xf - running_mean.value) * multiplier + bias
        return y.astype(self.dtype or x.dtype)


# ---------------------------------------------------------------------------
# Regularisation.
# ---------------------------------------------------------------------------

# Golden-ratio increment and MurmurHash3's 32-bit finaliser constants.
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B9, 0x85EBCA6B, 0xC2B2AE35


def _mix32(h: Array) -> Array:
    h = h ^ (h >> 16)
    h = h * jnp.uint32(_MIX1)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(_MIX2)
    return h ^ (h >> 16)


class Dropout(nn.Module):
    """``nn.Dropout`` (inverted: kept values scaled by ``1 / (1 - rate)``) with a cheap mask.

    The keep mask of element ``i`` is a hash of ``i`` and two 32-bit seeds
    drawn from the ``"dropout"`` RNG stream: one fused elementwise pass. Flax's
    mask draws a Threefry bit per element, which on XLA:CPU cost about 30x
    more (18 ms vs 0.6 ms for a 16 x 25 x 60 x 64 activation, about a tenth
    of an ST-GCN training step). Masks differ per module, step and RNG key
    like Flax's, but are not the same bits.
    """

    rate: float

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        if deterministic or self.rate == 0.0:
            return x
        if self.rate >= 1.0:
            return jnp.zeros_like(x)
        seeds = jax.random.bits(self.make_rng("dropout"), (2,), jnp.uint32)
        index = jax.lax.iota(jnp.uint32, x.size).reshape(x.shape)
        h = _mix32(index * jnp.uint32(_GOLDEN) + seeds[0])
        h = _mix32(h ^ seeds[1])
        keep = h >= jnp.uint32(min(int(self.rate * 2.0**32), 2**32 - 1))
        return jnp.where(keep, x / jnp.asarray(1.0 - self.rate, x.dtype), jnp.zeros((), x.dtype))


# ---------------------------------------------------------------------------
# Convolutions in the (B, V, T, C) layout.
# ---------------------------------------------------------------------------


def _conv1d(x: Array, kernel: Array, pad: int, dilation: int) -> Array:
    return jax.lax.conv_general_dilated(
        x, kernel, (1,), [(pad, pad)], rhs_dilation=(dilation,),
        dimension_numbers=("NWC", "WIO", "NWC"),
    )  # fmt: skip


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_frames(x: Array, kernel: Array, pad: int, dilation: int) -> Array:
    """Stride-1 convolution over frames: ``(B, V, T, C), (k, C, O) -> (B, V, T', O)``.

    Forward and input gradient run as a 1-D convolution over the ``B V``
    sequences; the kernel gradient as a 2-D one with a ``(1, k)`` window over
    ``(B, V, T, C)`` as it is, which XLA:CPU's Eigen convolution ran 10-28 %
    faster at 60 frames (64 -> 64 channels: 11.8 -> 10.0 ms; 64 -> 16: 10.9
    -> 7.9 ms; 2 cores), while its forward in that form was slower in the
    models (ST-GCN inference -7 %).
    """
    b, v, t, c = x.shape
    y = _conv1d(x.reshape(b * v, t, c), kernel, pad, dilation)
    return y.reshape(b, v, y.shape[1], kernel.shape[-1])


def _conv_frames_fwd(x: Array, kernel: Array, pad: int, dilation: int):
    return conv_frames(x, kernel, pad, dilation), (x, kernel)


def _conv_frames_bwd(pad: int, dilation: int, residuals: tuple[Array, Array], grad: Array):
    x, kernel = residuals
    b, v, t, c = x.shape

    def over_sequences(x: Array) -> Array:
        return _conv1d(x.reshape(b * v, t, c), kernel, pad, dilation)

    def over_layout(kernel: Array) -> Array:
        return jax.lax.conv_general_dilated(
            x, kernel[None], (1, 1), [(0, 0), (pad, pad)], rhs_dilation=(1, dilation),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )  # fmt: skip

    (dx,) = jax.vjp(over_sequences, x)[1](grad.reshape(b * v, -1, grad.shape[-1]))
    (dkernel,) = jax.vjp(over_layout, kernel)[1](grad)
    return dx, dkernel


conv_frames.defvjp(_conv_frames_fwd, _conv_frames_bwd)


def strided_conv1d(x: Array, kernel: Array, stride: int, dilation: int, pad: int) -> Array:
    """PyTorch's ``Conv1d`` (no bias) over frames: ``(N, T, C), (k, C, O) -> (N, T', O)``.

    ``T' = floor((T + 2 pad - dilation (k - 1) - 1) / stride) + 1``. A stride
    above 1 is rewritten as stride-1 convolutions over the ``stride`` phases
    of the padded frames (frame ``s u + r`` is phase ``r``, row ``u``), because
    the input gradient of a strided convolution is an input-dilated one, which
    XLA:CPU runs outside its fast convolution path (on 2 cores, the stride-2
    temporal unit of 2s-AGCN took 2x PyTorch's time). With dilation 1 the
    phases become channel groups of one convolution (a free reshape of the
    frames and of the zero-extended kernel) whose own padding replaces a
    padded copy: 14-25 % less time than XLA's strided convolution for the
    stride-2 units (forward and backward, 2 cores). Otherwise each phase that
    holds taps gets its own dilated convolution. Same sums as the strided
    convolution, in another order.
    """
    n, t, c = x.shape
    k = kernel.shape[0]
    s, d = stride, dilation
    if s == 1:
        return jax.lax.conv_general_dilated(
            x, kernel, (1,), [(pad, pad)], rhs_dilation=(d,),
            dimension_numbers=("NWC", "WIO", "NWC"),
        )  # fmt: skip
    out_len = (t + 2 * pad - d * (k - 1) - 1) // s + 1
    if out_len < 1:
        raise ValueError(f"temporal convolution: {t} frames give no output (kernel {k}).")
    dims = ("NWC", "WIO", "NWC")
    if d == 1:
        # Zero taps in front make the left padding whole rows, so the padding is
        # the convolution's own (no padded copy of the activations).
        front = -pad % s
        if t % s:
            x = jnp.pad(x, ((0, 0), (0, s - t % s), (0, 0)))
        rows = x.shape[1] // s
        left_rows = (pad + front) // s
        taps = -(-(k + front) // s)
        grouped = jnp.pad(kernel, ((front, taps * s - k - front), (0, 0), (0, 0)))
        grouped = grouped.reshape(taps, s * c, kernel.shape[-1])
        right_rows = max(0, out_len + taps - 1 - left_rows - rows)
        y = jax.lax.conv_general_dilated(
            x.reshape(n, rows, s * c), grouped, (1,), [(left_rows, right_rows)],
            dimension_numbers=dims,
        )  # fmt: skip
        return y[:, :out_len]
    padded_len = -(-(t + 2 * pad) // s) * s
    x = jnp.pad(x, ((0, 0), (pad, padded_len - t - pad), (0, 0)))
    rows = padded_len // s
    phases = x.reshape(n, rows, s, c)
    step = d // math.gcd(d, s)  # taps of one phase are this many rows apart
    y = None
    for r in range(s):
        taps = [j for j in range(k) if (j * d) % s == r]
        if not taps:
            continue
        first = (taps[0] * d) // s
        part = jax.lax.conv_general_dilated(
            phases[:, first:, r], kernel[taps[0] :: s // math.gcd(d, s)], (1,), "VALID",
            rhs_dilation=(step,), dimension_numbers=dims,
        )[:, :out_len]  # fmt: skip
        y = part if y is None else y + part
    return y


def convolve_frames(
    x: Array, kernel: Array, stride: int = 1, dilation: int = 1, pad: int = 0
) -> Array:
    """Convolution over frames, no bias: ``(B, V, T, C), (k, C, O) -> (B, V, T', O)``.

    ``T' = floor((T + 2 pad - dilation (k - 1) - 1) / stride) + 1`` as in
    PyTorch. A one-frame kernel without padding is a strided slice and a
    matmul (``rows_matmul``). Any other kernel, in float32 on the CPU backend,
    goes to oneDNN (``onednn_conv``: 1.1-2x the speed of XLA's Eigen
    convolution per pass on 2 cores). Otherwise (GPU, TPU, bfloat16,
    ``SMG_JAX_ONEDNN_CONV=0``, kernels above ``onednn_conv.MAX_KERNEL_ELEMENTS``)
    XLA convolves: stride 1 as ``conv_frames``, a larger stride as
    ``strided_conv1d``.
    """
    if kernel.shape[0] == 1 and pad == 0:
        return rows_matmul(x[:, :, ::stride], kernel[0])
    if x.dtype == kernel.dtype and onednn_conv.used_for(x.dtype, kernel.shape):
        return _convolve_frames_onednn(x, kernel, stride, pad, dilation)
    return _convolve_frames_xla(x, kernel, stride, pad, dilation)


def _convolve_frames_xla(x: Array, kernel: Array, stride: int, pad: int, dilation: int) -> Array:
    if stride == 1:
        return conv_frames(x, kernel, pad, dilation)
    b, v, t, c = x.shape
    y = strided_conv1d(x.reshape(b * v, t, c), kernel, stride, dilation, pad)
    return y.reshape(b, v, y.shape[1], kernel.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _convolve_frames_onednn(x: Array, kernel: Array, stride: int, pad: int, dilation: int) -> Array:
    """``convolve_frames`` by oneDNN where the program is lowered for the CPU, else by XLA."""
    b, v, t, c = x.shape

    def cpu(x: Array, kernel: Array) -> Array:
        y = onednn_conv.forward(x.reshape(b * v, t, c), kernel, stride, pad, dilation)
        return y.reshape(b, v, y.shape[1], kernel.shape[-1])

    def default(x: Array, kernel: Array) -> Array:
        return _convolve_frames_xla(x, kernel, stride, pad, dilation)

    return onednn_conv.on_cpu(cpu, default, x, kernel)


def _convolve_frames_onednn_fwd(x: Array, kernel: Array, stride: int, pad: int, dilation: int):
    return _convolve_frames_onednn(x, kernel, stride, pad, dilation), (x, kernel)


def _convolve_frames_onednn_bwd(
    stride: int, pad: int, dilation: int, residuals: tuple[Array, Array], grad: Array
) -> tuple[Array, Array]:
    x, kernel = residuals
    b, v, t, c = x.shape

    def cpu(x: Array, kernel: Array, grad: Array) -> tuple[Array, Array]:
        rows = grad.reshape(b * v, grad.shape[2], grad.shape[3])
        dx = onednn_conv.input_gradient(rows, kernel, t, stride, pad, dilation)
        dkernel = onednn_conv.kernel_gradient(
            x.reshape(b * v, t, c), rows, kernel.shape[0], stride, pad, dilation
        )
        return dx.reshape(x.shape), dkernel

    def default(x: Array, kernel: Array, grad: Array) -> tuple[Array, Array]:
        _, vjp = jax.vjp(
            lambda x, kernel: _convolve_frames_xla(x, kernel, stride, pad, dilation), x, kernel
        )
        return vjp(grad)

    return onednn_conv.on_cpu(cpu, default, x, kernel, grad)


_convolve_frames_onednn.defvjp(_convolve_frames_onednn_fwd, _convolve_frames_onednn_bwd)


class TemporalConv(nn.Module):
    """``Conv2d(C, features, (k, 1), stride=(s, 1), padding=(p, 0), dilation=(d, 1))``.

    Input ``(B, V, T, C)``, output ``(B, V, T', features)`` with PyTorch's
    ``T' = floor((T + 2p - d(k-1) - 1) / s) + 1``. Joints fold into the batch
    and the convolution runs 1-D over frames; a one-frame kernel is a strided
    slice and a matmul. This is the one place that decides how temporal
    convolution is computed, so it can be swapped for a faster formulation.

    Attributes:
      features: output channels.
      kernel_size: ``k`` frames.
      stride: ``s``.
      dilation: ``d``.
      padding: ``p`` zero frames on each side; ``None`` gives
        ``d (k - 1) // 2``, the "same" padding every published model uses.
      kernel_init / bias_init: of the ``(k, C, features)`` kernel and the bias.
    """

    features: int
    kernel_size: int = 9
    stride: int = 1
    dilation: int = 1
    padding: int | None = None
    use_bias: bool = True
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = zeros
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = x.shape[-1]
        k, s, d = self.kernel_size, self.stride, self.dilation
        pad = d * (k - 1) // 2 if self.padding is None else self.padding
        kernel = self.param("kernel", self.kernel_init, (k, c, self.features), self.param_dtype)
        dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
        y = convolve_frames(x.astype(dtype), kernel.astype(dtype), s, d, pad)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), self.param_dtype).astype(
                dtype
            )
        return y


class ParamsOnlyConv(nn.Module):
    """Declares a ``TemporalConv``'s parameters and returns them, computing nothing.

    For convolutions that a published model constructs (so they count as
    trainable parameters and sit in its checkpoints) but never calls, and for
    those a model applies in its own formulation. Returns ``(kernel (k, C,
    features), bias (features,))``.
    """

    in_features: int
    features: int
    kernel_size: int
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = zeros
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self) -> tuple[Array, Array]:
        shape = (self.kernel_size, self.in_features, self.features)
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        return kernel, self.param("bias", self.bias_init, (self.features,), self.param_dtype)


def max_pool_time(x: Array, window: int, stride: int, pad: int) -> Array:
    """``MaxPool2d((window, 1), (stride, 1), (pad, 0))`` on ``(B, V, T, C)``: pads with -inf."""
    return nn.max_pool(
        x.reshape(-1, *x.shape[2:]),
        window_shape=(window,),
        strides=(stride,),
        padding=[(pad, pad)],
    ).reshape(*x.shape[:2], -1, x.shape[-1])


class TemporalUnit(nn.Module):
    """``unit_tcn`` of 2s-AGCN / GCN-NAS / CTR-GCN: ``BN(Conv2d((k, 1), stride))``.

    Also the 1x1 projections of the residual paths (``kernel_size=1``:
    ``down`` of a widening graph unit, the strided ``residual`` of a block). The
    convolution has ``kaiming_normal(fan_out)`` weights (unless
    ``kernel_init`` says otherwise) and zero bias, the BatchNorm scale starts
    at ``bn_scale_init`` (1). Names ``conv`` and ``bn`` as upstream.
    """

    features: int
    kernel_size: int = 9
    stride: int = 1
    kernel_init: Initializer | None = None
    bn_scale_init: Initializer = ones
    bn_axis_name: str | None = None
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        x = TemporalConv(
            self.features,
            self.kernel_size,
            self.stride,
            padding=(self.kernel_size - 1) // 2,
            kernel_init=self.kernel_init or kaiming_fan_out(self.features, self.kernel_size),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv",
        )(x)
        return BatchNorm(
            scale_init=self.bn_scale_init,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="bn",
        )(x, train)


# ---------------------------------------------------------------------------
# Graph convolutions.
# ---------------------------------------------------------------------------


def rows_matmul(x: Array, kernel: Array) -> Array:
    """``x @ kernel`` for ``x (..., C)`` and ``kernel (C, O)``, with ``x`` flattened to rows.

    The same product; the flattening makes the weight gradient one matmul that
    contracts a single ``(rows,)`` axis. Left ``(B, V, T, C)``, autodiff
    contracts ``(B, V, T)`` as three axes, which XLA:CPU ran up to 1.8x slower
    (``(16, 1500, 64) x (16, 1500, 192)``: 6.9 against 3.9 ms).
    """
    rows = x.reshape(-1, x.shape[-1]) @ kernel
    return rows.reshape(*x.shape[:-1], kernel.shape[-1])


def _per_clip(a: Array, clips: int) -> Array:
    return a if a.ndim == 3 else jnp.broadcast_to(a, (clips, *a.shape))


@jax.custom_vjp
def aggregate_joints(adjacency: Array, features: Array) -> Array:
    """``out[b, w] = sum_v A[v, w] x[b, v]``: ``(V, W) | (B, V, W), (B, V, F) -> (B, W, F)``.

    One batched matmul over clips with ``A^T`` as a materialised ``(B, W, V)``
    operand (behind an optimisation barrier, so that XLA cannot fold the
    transpose back into the product), and a written-out gradient whose
    products are in matmul order too: ``dx = A g`` and ``dA = x g^T`` (summed
    over clips for a shared ``A``). Left to itself XLA:CPU ran the
    transposed-operand forms in Eigen: a per-clip ``(16, 25, 3840)``
    aggregation took 1.67 ms against 0.65 ms this way, and forward + backward
    with a shared graph 2.92 against 2.33 ms (2 cores).
    """
    clips = features.shape[0]
    transposed = jax.lax.optimization_barrier(_per_clip(jnp.swapaxes(adjacency, -1, -2), clips))
    return jax.lax.dot_general(transposed, features, (((2,), (1,)), ((0,), (0,))))


def _aggregate_joints_fwd(adjacency: Array, features: Array):
    return aggregate_joints(adjacency, features), (adjacency, features)


def _aggregate_joints_bwd(residuals: tuple[Array, Array], grad: Array) -> tuple[Array, Array]:
    adjacency, features = residuals
    per_clip = _per_clip(adjacency, features.shape[0])
    d_features = jax.lax.dot_general(per_clip, grad, (((2,), (1,)), ((0,), (0,))))
    d_adjacency = jax.lax.dot_general(features, grad, (((2,), (2,)), ((0,), (0,))))
    if adjacency.ndim == 2:
        d_adjacency = d_adjacency.sum(0)
    return d_adjacency.astype(adjacency.dtype), d_features


aggregate_joints.defvjp(_aggregate_joints_fwd, _aggregate_joints_bwd)


def graph_project(
    x: Array, adjacency: Array, kernel: Array, subset_bias: Array | None = None
) -> Array:
    """``sum_k (x @ A_k) W_k``: ``(B, V, T, C), (K|B K, V, W), (K, C, O) -> (B, W, T, O)``.

    Output joint ``w`` gathers joints ``v`` weighted by ``A_k[v, w]`` (the
    published ``einsum('nkctv,kvw->nctw')`` and ``torch.matmul(x, A)``); the
    adjacency may differ per clip (``(B, K, V, W)``, the adaptive graphs).
    ``subset_bias`` ``(K, O)`` is added to each ``x W_k`` before aggregation,
    the published project-then-aggregate order.

    Each subset is one batched matmul over clips, ``A_k^T (W, V) @ x_b (V, T
    C)``, and one plain matmul with ``W_k``, summed over ``k``. Every operand
    is then already in matmul order, where an ``einsum`` over ``(v, k, c)``
    made XLA transpose the activations and their gradients (on CPU about a
    third of the graph convolution's time). The cheaper side goes first:
    aggregate then project when ``C <= O``, project then aggregate otherwise
    (same sum up to float rounding; a bias then moves through the graph as
    ``sum_k b_k colsum(A_k)``).
    """
    b, v, t, c = x.shape
    k, _, o = kernel.shape
    per_clip = adjacency.ndim == 4
    w = adjacency.shape[-1]

    def gather(a: Array, features: Array) -> Array:  # (V, W) or (B, V, W), (B, V, T, F)
        out = aggregate_joints(a, features.reshape(b, v, -1))
        return out.reshape(b, w, t, features.shape[-1])

    def subset(i: int) -> Array:
        return adjacency[:, i] if per_clip else adjacency[i]

    out = None
    for i in range(k):
        if c <= o:
            term = rows_matmul(gather(subset(i), x), kernel[i])
        else:
            projected = rows_matmul(x, kernel[i])
            if subset_bias is not None:
                projected = projected + subset_bias[i]
            term = gather(subset(i), projected)
        out = term if out is None else out + term
    if subset_bias is not None and c <= o:
        # sum_v A_k[v, w] b_k: the bias of every gathered joint, summed per subset.
        through = jnp.einsum("...kvw,ko->...wo", adjacency, subset_bias)
        out = out + (through[:, :, None] if per_clip else through[None, :, None])
    return out


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
        y = graph_project(x.astype(dtype), adjacency.astype(dtype), kernel.astype(dtype))
        return y + bias.sum(0).astype(dtype)


class GraphConv(nn.Module):
    """ST-GCN's ``ConvTemporalGraphical``: a 1x1 conv to ``K * features`` then ``x @ A_k`` summed.

    Input ``(B, V, T, C)``, adjacency ``(K, V, V)``, output
    ``(B, V, T, features)``; computed by ``graph_project``.

    Params: ``kernel (C, K * features)`` and ``bias (K * features,)`` with
    PyTorch's output channel order ``k * features + c``.
    """

    features: int
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = zeros
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, adjacency: Array) -> Array:
        c = x.shape[-1]
        k = adjacency.shape[0]
        o = self.features
        kernel = self.param("kernel", self.kernel_init, (c, k * o), self.param_dtype)
        bias = self.param("bias", self.bias_init, (k * o,), self.param_dtype)
        dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
        per_subset = kernel.astype(dtype).reshape(c, k, o).transpose(1, 0, 2)
        return graph_project(
            x.astype(dtype), adjacency.astype(dtype), per_subset, bias.astype(dtype).reshape(k, o)
        )


def subsets_major(embedding: Array) -> Array:
    """``(B, V, T, K, C_e) -> (B, K, V, T * C_e)``: each subset's embedding as one row per joint.

    The copy moves whole ``C_e``-channel blocks. Left to the ``einsum`` over
    ``(t, i)``, XLA:CPU laid the two operands out with the frames innermost
    and the joints innermost (element-wise transposes), for the forward and
    again for the gradient.
    """
    b, v, t, k, i = embedding.shape
    return jnp.transpose(embedding, (0, 3, 1, 2, 4)).reshape(b, k, v, t * i)


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
        to fill XLA:CPU's convolution and matmul tiles: alone, forward +
        backward of the four 9-frame embeddings of a 64-channel unit at 60
        frames took 80 ms as four convolutions and 51 ms as one (2 cores).
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
            y = convolve_frames(x.astype(dtype), kernel.astype(dtype), pad=(size - 1) // 2)
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
                scores = jnp.einsum(
                    "bkvf,bkwf->bkvw", subsets_major(theta), subsets_major(phi)
                ).astype(jnp.float32)
            adjacency = adjacency + jax.nn.softmax(scores / (inter * t), axis=2)

        dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
        y = SubsetProjection(
            self.features,
            kernel_init=normal(0.0, math.sqrt(2.0 / (self.features * x.shape[-1] * k))),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv_d",
        )(x.astype(dtype), adjacency.astype(dtype))
        y = BatchNorm(
            scale_init=constant(1e-6),
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="bn",
        )(y, train)
        if x.shape[-1] != self.features:
            down = TemporalUnit(
                self.features,
                kernel_size=1,
                bn_axis_name=self.bn_axis_name,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name="down",
            )(x, train)
        else:
            down = x
        return nn.relu(y + down)


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
        if not self.residual:
            res = 0.0
        elif x.shape[-1] == self.features and self.stride == 1:
            res = x
        else:
            res = TemporalUnit(
                self.features, kernel_size=1, stride=self.stride, name="residual", **common
            )(x, train)
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


def load_stacked_conv(reader: StateDictReader, prefixes: Sequence[str]) -> dict[str, np.ndarray]:
    """Several ``Conv2d((k, 1))`` side by side -> one ``TemporalConv`` of all their outputs."""
    parts = [temporal_conv(reader, prefix) for prefix in prefixes]
    return {
        "kernel": np.concatenate([p["kernel"] for p in parts], axis=-1),
        "bias": np.concatenate([p["bias"] for p in parts], axis=-1),
    }


def load_adaptive_unit(
    reader: StateDictReader,
    tree: VariableTree,
    torch_prefix: str,
    ours: str,
    num_subsets: int,
    branches: Sequence[str],
) -> None:
    """Maps one upstream ``TCN_GCN_unit`` (2s-AGCN or GCN-NAS) onto an ``AdaptiveUnit``."""
    gcn, k = f"{torch_prefix}.gcn1", num_subsets
    if f"{gcn}.PA" in reader:
        tree.param(f"{ours}/gcn1/PA", reader.get(f"{gcn}.PA"))
    names = {"spatial": ("conv_a", "conv_b"), "temporal": ("conv_T1", "conv_T2")}
    for branch in branches:
        if branch == "spatiotemporal":
            for name in ("conv_ST11", "conv_ST12"):
                for j in range(2 * k):
                    tree.param(
                        f"{ours}/gcn1/{name}_{j}", temporal_conv(reader, f"{gcn}.{name}.{j}")
                    )
            continue
        for name in names[branch]:
            prefixes = [f"{gcn}.{name}.{i}" for i in range(k)]
            tree.param(f"{ours}/gcn1/{name}", load_stacked_conv(reader, prefixes))
    conv_d = [reader.conv_as_dense(f"{gcn}.conv_d.{i}") for i in range(k)]
    tree.param(
        f"{ours}/gcn1/conv_d",
        {
            "kernel": np.stack([c["kernel"] for c in conv_d]),
            "bias": np.stack([c["bias"] for c in conv_d]),
        },
    )
    tree.batch_norm(f"{ours}/gcn1/bn", reader, f"{gcn}.bn")
    if f"{gcn}.down.0.weight" in reader:
        tree.param(f"{ours}/gcn1/down/conv", temporal_conv(reader, f"{gcn}.down.0"))
        tree.batch_norm(f"{ours}/gcn1/down/bn", reader, f"{gcn}.down.1")
    tree.param(f"{ours}/tcn1/conv", temporal_conv(reader, f"{torch_prefix}.tcn1.conv"))
    tree.batch_norm(f"{ours}/tcn1/bn", reader, f"{torch_prefix}.tcn1.bn")
    if f"{torch_prefix}.residual.conv.weight" in reader:
        tree.param(f"{ours}/residual/conv", temporal_conv(reader, f"{torch_prefix}.residual.conv"))
        tree.batch_norm(f"{ours}/residual/bn", reader, f"{torch_prefix}.residual.bn")


# ---------------------------------------------------------------------------
# Input normalisation and the classification head.
# ---------------------------------------------------------------------------


class DataBatchNorm(nn.Module):
    """The published input BatchNorm and the move into the internal layout.

    Input ``(N, M, T, V, C)``; output ``(N * M, V, T, C)``.

    ``bodies_in_channels=True`` (2s-AGCN, GCN-NAS, CTR-GCN, MS-G3D):
    ``BatchNorm1d(M * V * C)`` with channel ``m*V*C + v*C + c`` (the
    originals' ``x.permute(0, 4, 3, 1, 2).view(N, M*V*C, T)``), statistics
    over clips and frames. ``False`` (ST-GCN): ``BatchNorm1d(V * C)`` with
    channel ``v*C + c`` and bodies folded into the batch.
    """

    bodies_in_channels: bool = True
    scale_init: Initializer = ones
    bn_axis_name: str | None = None
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        n, m, t, v, c = x.shape
        if self.bodies_in_channels:
            flat = x.transpose(0, 2, 1, 3, 4).reshape(n, t, m * v * c)
        else:
            flat = x.reshape(n * m, t, v * c)
        flat = BatchNorm(
            scale_init=self.scale_init,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="bn",
        )(flat, train)
        if self.bodies_in_channels:
            x = flat.reshape(n, t, m, v, c).transpose(0, 2, 3, 1, 4)
        else:
            x = flat.reshape(n, m, t, v, c).transpose(0, 1, 3, 2, 4)
        return x.reshape(n * m, v, t, c)


def published_classifier(
    num_classes: int, in_features: int, dtype: Dtype | None, param_dtype: Dtype, name: str = "fc"
) -> nn.Dense:
    """2s-AGCN's ``fc`` (also GCN-NAS's, CTR-GCN's): ``normal(0, sqrt(2 / num_classes))``
    weights and PyTorch's default ``Linear`` bias."""
    return nn.Dense(
        num_classes,
        kernel_init=normal(0.0, math.sqrt(2.0 / num_classes)),
        bias_init=torch_linear_bias(in_features),
        dtype=dtype,
        param_dtype=param_dtype,
        name=name,
    )


def pool_bodies(x: Array, num_clips: int) -> Array:
    """Global average over joints and frames, then over bodies: ``(N*M, V, T, C) -> (N, C)``."""
    b, v, t, c = x.shape
    per_body = x.astype(jnp.float32).reshape(b, v * t, c).mean(1)
    return per_body.reshape(num_clips, b // num_clips, c).mean(1)


def check_input(
    model_name: str, x: Array, num_joints: int, in_channels: int, num_persons: int | None = None
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


def resolve_skeleton(skeleton: str | Skeleton) -> Skeleton:
    """A ``Skeleton`` given itself or its name (``"kinect_v2"``, alias ``"ntu"``)."""
    return skeleton if isinstance(skeleton, Skeleton) else get_skeleton(skeleton)


def build_module(cls: type[nn.Module], model_name: str, num_classes: int, overrides: Mapping):
    """``cls(num_classes=..., **overrides)`` after checking every override is a field.

    Lists become tuples so that the module stays hashable (a requirement of
    ``jax.jit`` on bound ``apply`` methods and of Flax's own caching).
    """
    fields = [f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")]
    check_overrides(model_name, [f for f in fields if f != "num_classes"], overrides)
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return cls(num_classes=num_classes, **fixed)


def example_input_for(module: nn.Module) -> jax.ShapeDtypeStruct:
    """An abstract ``(1, M, 16, V, C)`` input for ``convert.check_variables``."""
    v = resolve_skeleton(module.skeleton).num_joints
    shape = (1, module.num_persons, 16, v, module.in_channels)
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def infer_num_persons(reader: StateDictReader, cls: type[nn.Module], overrides: Mapping):
    """Adds ``num_persons`` read off ``data_bn`` (``M * V * C`` channels) unless given."""
    if "num_persons" in overrides or "data_bn.running_mean" not in reader:
        return dict(overrides)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    v = resolve_skeleton(overrides.get("skeleton", defaults["skeleton"])).num_joints
    c = overrides.get("in_channels", defaults["in_channels"])
    size = reader.get("data_bn.running_mean").shape[0]
    if size % (v * c):
        return dict(overrides)  # check_variables reports the mismatch.
    return {**overrides, "num_persons": size // (v * c)}
