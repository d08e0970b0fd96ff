"""Temporal convolutions by oneDNN on the CPU backend (an XLA FFI custom call): the JAX side.

XLA:CPU runs a convolution in Eigen, which for our 9-frame temporal
convolutions ran slower than the oneDNN convolution PyTorch calls (forward +
both gradients; docs/performance.md). The functions here call the three FFI
handlers of ``smg_jax/runtime/onednn_conv.cc``: forward, input gradient and
kernel gradient of PyTorch's ``Conv1d`` over frames in our channels-last
layout, ``(N, T, C), (k, C, O) -> (N, T', O)``.

The handlers are built and registered by an explicit step
(``smg_jax.runtime.onednn.load``, which ``smg_jax.runtime.setup`` runs at the
start of every ``experiments`` program); tracing never builds anything.
``used_for`` asks only whether they are registered in this process, so a
process that never loads them keeps XLA's convolution, computing the same
function.

Only float32 on the CPU backend goes to oneDNN: the calls sit behind
``jax.lax.platform_dependent``, so the same program lowered for a GPU or TPU
keeps XLA's convolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.runtime import onednn

# The largest kernel (taps x in x out channels) given to oneDNN: its brgemm
# convolution, one thread per chunk, fell behind Eigen past 256 -> 256 channels
# (docs/performance.md).
MAX_KERNEL_ELEMENTS = 9 * 256 * 256


def used_for(dtype: jnp.dtype, kernel_shape: tuple[int, ...]) -> bool:
    """Whether a convolution of ``dtype`` with a ``(k, C, O)`` kernel goes to oneDNN.

    Only where the targets are registered in this process
    (``smg_jax.runtime.onednn.load``), on the CPU backend (the default
    backend is the one programs are lowered for), in float32, for kernels of
    at most ``MAX_KERNEL_ELEMENTS``.
    """
    return (
        jnp.dtype(dtype) == jnp.float32
        and math.prod(kernel_shape) <= MAX_KERNEL_ELEMENTS
        and onednn.registered()
        and jax.default_backend() == "cpu"
    )


def out_frames(frames: int, taps: int, stride: int, pad: int, dilation: int) -> int:
    """PyTorch's ``Conv1d`` output length, ``floor((T + 2p - d (k - 1) - 1) / s) + 1``."""
    return (frames + 2 * pad - dilation * (taps - 1) - 1) // stride + 1


def _call(kind: str, shape: tuple[int, ...], *operands: jax.Array, stride: int, pad: int,
          dilation: int) -> jax.Array:  # fmt: skip
    return jax.ffi.ffi_call(
        onednn.TARGET_PREFIX + kind,
        jax.ShapeDtypeStruct(shape, jnp.float32),
        vmap_method="sequential",
    )(*operands, stride=np.int64(stride), pad=np.int64(pad), dilation=np.int64(dilation))


def forward(x: jax.Array, kernel: jax.Array, stride: int, pad: int, dilation: int) -> jax.Array:
    """``(N, T, C), (k, C, O) -> (N, T', O)`` by oneDNN (CPU only, float32)."""
    n, t, _ = x.shape
    k, _, o = kernel.shape
    shape = (n, out_frames(t, k, stride, pad, dilation), o)
    return _call("forward", shape, x, kernel, stride=stride, pad=pad, dilation=dilation)


def input_gradient(
    grad: jax.Array, kernel: jax.Array, frames: int, stride: int, pad: int, dilation: int
) -> jax.Array:
    """``(N, T', O), (k, C, O) -> (N, T, C)``: the gradient of ``forward`` for its input."""
    shape = (grad.shape[0], frames, kernel.shape[1])
    return _call("input_gradient", shape, grad, kernel, stride=stride, pad=pad, dilation=dilation)


def kernel_gradient(
    x: jax.Array, grad: jax.Array, taps: int, stride: int, pad: int, dilation: int
) -> jax.Array:
    """``(N, T, C), (N, T', O) -> (k, C, O)``: the gradient of ``forward`` for its kernel."""
    shape = (taps, x.shape[2], grad.shape[2])
    return _call("kernel_gradient", shape, x, grad, stride=stride, pad=pad, dilation=dilation)


def on_cpu(cpu: Callable[..., jax.Array], default: Callable[..., jax.Array], *args: jax.Array):
    """``cpu(*args)`` when the program is lowered for the CPU backend, else ``default(*args)``."""
    return jax.lax.platform_dependent(*args, cpu=cpu, default=default)
