"""Serialisable inference programs of the models (``jax.export``), with a symbolic batch.

An exported model is its inference function, ``x (N, M, T, V, C) -> logits
(N, num_classes)``, lowered to StableHLO with the weights inside and the
batch size ``N`` left symbolic, so one artifact serves any batch. It runs in
any process with a compatible ``jax`` installed, without ``smg_jax``::

    exported = export_model(module, variables, (1, 64, 25, 3))
    data = serialize(exported)                   # bytes, e.g. written to a file
    logits = deserialize(data).call(x)           # x: (any N, 1, 64, 25, 3) float32

The temporal convolutions lower to XLA's convolution even where the oneDNN
custom call is built and registered (``ops.without_custom_calls``):
``jax.export`` accepts only custom calls whose targets promise compatibility.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from smg_jax.models import ops

BATCH = "batch"


def export_model(
    module: nn.Module,
    variables: Mapping[str, Any],
    input_shape_without_batch: Sequence[int],
    *,
    dtype: Any = jnp.float32,
    platforms: Sequence[str] | None = None,
) -> jax.export.Exported:
    """Exports ``module.apply(variables, x, train=False)`` for ``x (batch, *input_shape)``.

    Args:
      module: a model of the registry (``smg_jax.models.create`` / ``from_torch``).
      variables: its ``{"params", "batch_stats"}``; they become constants of
        the program.
      input_shape_without_batch: ``(M, T, V, C)``: bodies, frames, joints, channels.
      dtype: of ``x``.
      platforms: what the program is lowered for (``("cpu", "cuda")`` ...);
        ``None``: the default backend.

    Returns:
      The ``jax.export.Exported`` program; call it with ``.call(x)``.

    Raises:
      ValueError: ``input_shape_without_batch`` does not have 4 entries.
    """
    if len(input_shape_without_batch) != 4:
        raise ValueError(
            "export_model: input_shape_without_batch must be (M, T, V, C) (bodies, frames, "
            f"joints, channels), got {tuple(input_shape_without_batch)}."
        )
    (batch,) = jax.export.symbolic_shape(BATCH)
    spec = jax.ShapeDtypeStruct((batch, *input_shape_without_batch), dtype)

    def infer(x: jax.Array) -> jax.Array:
        return module.apply(variables, x, train=False)

    with ops.without_custom_calls():
        return jax.export.export(jax.jit(infer), platforms=platforms)(spec)


def serialize(exported: jax.export.Exported) -> bytes:
    """The exported program as bytes (StableHLO with its calling convention)."""
    return bytes(exported.serialize())


def deserialize(data: bytes) -> jax.export.Exported:
    """The program ``serialize`` wrote; call it with ``.call(x)``."""
    return jax.export.deserialize(bytearray(data))
