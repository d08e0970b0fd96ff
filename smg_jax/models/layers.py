"""Flax layers that two or more of the skeleton models share, and the backbone they share.

Internal layout
---------------
Every model takes the public ``(N, M, T, V, C)`` input and works internally
on ``(B, V, T, C)``: ``B = N * M`` skeleton sequences, joints major,
channels last (Shift-GCN, whose only temporal mixing is its shift, keeps
``(B, T, V, C)``). Folding joints into the batch is then a free reshape, and
the temporal convolution a 1-D convolution over frames. PyTorch's
``(N*M, C, T, V)`` channel ``c``, frame ``t``, joint ``v`` is our
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

How a layer is computed (fused kernels, custom gradients, oneDNN) lives in
``smg_jax.models.ops``; the layers here only say what is computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smg_jax.graph import Skeleton, spatial_subsets
from smg_jax.models import check_input, resolve_skeleton
from smg_jax.models.ops import batch_norm, dropout, temporal_conv

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


def uniform(bound: float) -> Initializer:
    """``U(-bound, bound)``: ``nn.init.uniform_(w, -bound, bound)``."""

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
# Normalisation and regularisation.
# ---------------------------------------------------------------------------


def _global_count(x: Array, axis_name: str | None) -> Any:
    count = math.prod(x.shape[:-1])
    return count if axis_name is None else count * jax.lax.psum(1, axis_name)


class BatchNorm(nn.Module):
    """``torch.nn.BatchNorm{1,2}d`` over the last axis, statistics over all others.

    Training mode normalises with the batch statistics (float32, the
    ``ops.batch_norm`` op), evaluation with the running averages.

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
            y, mean, var = batch_norm.batch_norm_train(
                xf, scale, bias, self.epsilon, self.axis_name
            )
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


class Dropout(nn.Module):
    """``nn.Dropout``: kept values scaled by ``1 / (1 - rate)``.

    The mask is a hash of the element index and two 32-bit seeds drawn from
    the ``"dropout"`` RNG stream (``ops.dropout``): masks differ per module,
    step and RNG key like Flax's, but are not the same bits.
    """

    rate: float

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        if deterministic or self.rate == 0.0:
            return x
        if self.rate >= 1.0:
            return jnp.zeros_like(x)
        seeds = jax.random.bits(self.make_rng("dropout"), (2,), jnp.uint32)
        return dropout.dropout(x, self.rate, seeds)


# ---------------------------------------------------------------------------
# Temporal convolutions in the (B, V, T, C) layout.
# ---------------------------------------------------------------------------


class TemporalConv(nn.Module):
    """``Conv2d(C, features, (k, 1), stride=(s, 1), padding=(p, 0), dilation=(d, 1))``.

    Input ``(B, V, T, C)``, output ``(B, V, T', features)`` with PyTorch's
    ``T' = floor((T + 2p - d(k-1) - 1) / s) + 1``. Joints fold into the batch
    and the convolution runs 1-D over frames (``ops.temporal_conv``).

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
        y = temporal_conv.convolve_frames(x.astype(dtype), kernel.astype(dtype), s, d, pad)
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


def residual_path(
    x: Array,
    features: int,
    stride: int,
    enabled: bool,
    train: bool,
    name: str = "residual",
    **unit: Any,
) -> Array | float:
    """A unit's residual: none (``0.0``), the identity, or a strided 1x1 ``TemporalUnit``.

    The identity where width and stride are unchanged; otherwise the
    projection ``name`` (``unit``: more ``TemporalUnit`` fields). Call inside
    the unit's ``nn.compact`` method.
    """
    if not enabled:
        return 0.0
    if x.shape[-1] == features and stride == 1:
        return x
    return TemporalUnit(features, kernel_size=1, stride=stride, name=name, **unit)(x, train)


def module_batch_norm(module: nn.Module, name: str) -> BatchNorm:
    """A ``BatchNorm`` called ``name`` with ``module``'s axis name, dtype and parameter dtype.

    Call inside ``module``'s ``nn.compact`` method.
    """
    return BatchNorm(
        axis_name=module.bn_axis_name, dtype=module.dtype, param_dtype=module.param_dtype, name=name
    )


def graph_conv_output(
    y: Array,
    x: Array,
    train: bool,
    bn_axis_name: str | None,
    dtype: Dtype | None,
    param_dtype: Dtype,
) -> Array:
    """``ReLU(BN(y) + down(x))`` closing 2s-AGCN's and CTR-GCN's graph convolutions.

    ``BN`` (``bn``) starts at scale ``1e-6``; ``down`` is the identity, or a
    1x1 ``TemporalUnit`` where the width changes. Call inside the graph
    convolution's ``nn.compact`` method.
    """
    common = {"bn_axis_name": bn_axis_name, "dtype": dtype, "param_dtype": param_dtype}
    y = BatchNorm(
        scale_init=constant(1e-6),
        axis_name=bn_axis_name,
        dtype=dtype,
        param_dtype=param_dtype,
        name="bn",
    )(y, train)
    return nn.relu(y + residual_path(x, y.shape[-1], 1, True, train, name="down", **common))


# ---------------------------------------------------------------------------
# The backbone: input normalisation, units, pooling, classifier.
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


PUBLISHED_CHANNELS = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
PUBLISHED_STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)


class SubsetsNetwork(nn.Module):
    """The fields of the networks over the identity / inward / outward subsets.

    2s-AGCN, GCN-NAS and CTR-GCN subclass it and add their own fields.

    Attributes:
      num_classes: classifier size.
      in_channels: ``C`` of the input (3 for xyz joints or bones).
      skeleton: joint layout (name or ``Skeleton``); ``V`` follows from it.
      num_persons: bodies per clip ``M``; the input BatchNorm has ``M * V * C``
        channels, so inputs must have exactly this many bodies.
      channels: output channels of the units.
      strides: temporal strides of the units.
      bn_axis_name: axis for cross-replica BatchNorm statistics.
      dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay ``param_dtype``.
    """

    num_classes: int
    in_channels: int = 3
    skeleton: str | Skeleton = "kinect_v2"
    num_persons: int = 1
    channels: tuple[int, ...] = PUBLISHED_CHANNELS
    strides: tuple[int, ...] = PUBLISHED_STRIDES
    bn_axis_name: str | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def adjacency(self) -> np.ndarray:
        """``(3, V, V)``: identity, inward, outward (the authors' ``Graph('spatial').A``)."""
        return spatial_subsets(resolve_skeleton(self.skeleton))


def unit_options(module: nn.Module) -> dict[str, Any]:
    """The fields a network hands each unit: ``bn_axis_name``, ``dtype``, ``param_dtype``.

    ``dtype`` is float32 unless the network sets one.
    """
    return {
        "bn_axis_name": module.bn_axis_name,
        "dtype": module.dtype or jnp.float32,
        "param_dtype": module.param_dtype,
    }


def check_units(model_name: str, channels: Sequence[int], strides: Sequence[int]) -> None:
    """Refuses per-unit widths and strides of different lengths."""
    if len(channels) != len(strides):
        raise ValueError(f"{model_name}: channels and strides must have the same length.")


def backbone(
    module: nn.Module,
    model_name: str,
    x: Array,
    train: bool,
    units: Callable[[Array], Array],
    classifier: Callable[[Array], Array] | None = None,
    *,
    num_joints: int,
    num_persons: int | None,
    bodies_in_channels: bool = True,
    data_bn_scale_init: Initializer = ones,
    dropout_rate: float | None = None,
) -> Array:
    """The frame of every model: ``x (N, M, T, V, C)`` -> logits ``(N, num_classes)`` float32.

    Checks ``x``, normalises it (``data_bn``, a ``DataBatchNorm``) into
    ``(N M, V, T, C)``, runs ``units`` (the model's stack), averages over
    frames, joints and bodies, sows the pooled ``(N, C_last)`` features as
    ``intermediates/features``, applies dropout (where the model has one)
    and the ``classifier`` (``published_classifier`` unless given, named
    ``fc``). Call inside ``module``'s ``nn.compact``
    ``__call__``; ``module`` provides ``in_channels``, ``bn_axis_name``,
    ``dtype`` and ``param_dtype``. ``num_persons=None`` accepts any ``M``.
    """
    check_input(model_name, x, num_joints, module.in_channels, num_persons)
    num_clips = x.shape[0]
    dtype = module.dtype or jnp.float32
    x = DataBatchNorm(
        bodies_in_channels=bodies_in_channels,
        scale_init=data_bn_scale_init,
        bn_axis_name=module.bn_axis_name,
        dtype=dtype,
        param_dtype=module.param_dtype,
        name="data_bn",
    )(x.astype(jnp.float32), train)
    features = pool_bodies(units(x), num_clips)
    module.sow("intermediates", "features", features)
    if dropout_rate is not None:
        features = Dropout(dropout_rate)(features, not train)
    if classifier is None:
        classifier = published_classifier(
            module.num_classes, features.shape[-1], dtype, module.param_dtype
        )
    return classifier(features.astype(dtype)).astype(jnp.float32)
