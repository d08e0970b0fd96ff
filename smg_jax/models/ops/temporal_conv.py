"""Convolution over frames in the ``(B, V, T, C)`` layout, joints folded into the batch.

``convolve_frames`` chooses: a one-frame kernel without padding is a strided
slice and a matmul; float32 on the CPU backend goes to oneDNN
(``smg_jax.models.onednn_conv``) where its custom call is built, registered
and allowed (``switch.custom_calls_enabled``); otherwise XLA convolves,
stride 1 as ``conv_frames`` and a larger stride as ``strided_conv1d``. The
reference is one ``lax.conv_general_dilated`` with the stride, and autodiff.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from smg_jax.models import onednn_conv
from smg_jax.models.ops.joints import rows_matmul
from smg_jax.models.ops.switch import custom_calls_enabled, reference_enabled

Array = jax.Array
_DIMS = ("NWC", "WIO", "NWC")


def reference_conv1d(x: Array, kernel: Array, stride: int, dilation: int, pad: int) -> Array:
    """PyTorch's ``Conv1d`` (no bias): ``(N, T, C), (k, C, O) -> (N, T', O)``, as XLA writes it."""
    return jax.lax.conv_general_dilated(
        x, kernel, (stride,), [(pad, pad)], rhs_dilation=(dilation,), dimension_numbers=_DIMS
    )


def convolve_frames(
    x: Array, kernel: Array, stride: int = 1, dilation: int = 1, pad: int = 0
) -> Array:
    """Convolution over frames, no bias: ``(B, V, T, C), (k, C, O) -> (B, V, T', O)``.

    ``T' = floor((T + 2 pad - dilation (k - 1) - 1) / stride) + 1`` as in
    PyTorch. See the module docstring for which formulation runs.
    """
    if reference_enabled():
        b, v, t, c = x.shape
        y = reference_conv1d(x.reshape(b * v, t, c), kernel, stride, dilation, pad)
        return y.reshape(b, v, y.shape[1], kernel.shape[-1])
    if kernel.shape[0] == 1 and pad == 0:
        return rows_matmul(x[:, :, ::stride], kernel[0])
    if (
        x.dtype == kernel.dtype
        and custom_calls_enabled()
        and onednn_conv.used_for(x.dtype, kernel.shape)
    ):
        return _convolve_frames_onednn(x, kernel, stride, pad, dilation)
    return _convolve_frames_xla(x, kernel, stride, pad, dilation)


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
    ``(B, V, T, C)`` as it is, which XLA:CPU's Eigen convolution runs faster,
    while its forward in that form is slower.
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
    XLA:CPU runs outside its fast convolution path. With dilation 1 the
    phases become channel groups of one convolution (a free reshape of the
    frames and of the zero-extended kernel) whose own padding replaces a
    padded copy. Otherwise each phase that holds taps gets its own dilated
    convolution. Same sums as the strided convolution, in another order.
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
    if d == 1:
        return _phases_as_channels(x, kernel, s, pad, out_len)
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
            rhs_dilation=(step,), dimension_numbers=_DIMS,
        )[:, :out_len]  # fmt: skip
        y = part if y is None else y + part
    return y


def _phases_as_channels(x: Array, kernel: Array, s: int, pad: int, out_len: int) -> Array:
    """The undilated strided convolution as one stride-1 convolution over ``s`` phase groups."""
    n, t, c = x.shape
    k = kernel.shape[0]
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
        dimension_numbers=_DIMS,
    )  # fmt: skip
    return y[:, :out_len]


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
