"""The fast paths of the models' layers, each beside a plain reference.

One module per op: ``batch_norm`` (training-mode BatchNorm), ``dropout``
(hash mask), ``temporal_conv`` (convolution over frames: XLA, strided
rewrite, oneDNN), ``joints`` (aggregation by an adjacency, projection,
embedding scores), ``shift`` (Shift-GCN's temporal and spatial shifts),
``channel_topology`` (CTR-GCN's per-channel graphs). Each op computes its
plain reference instead when the switch is on (``use_reference(True)`` or
``with reference():``, read while tracing); ``tests/test_ops_*.py`` check
that both agree in values and gradients. The layers (``smg_jax.models.layers``
and the model files) call these ops and nothing below them.
"""

from smg_jax.models.ops.switch import (
    custom_calls_enabled,
    reference,
    reference_enabled,
    use_reference,
    without_custom_calls,
)

__all__ = [
    "custom_calls_enabled",
    "reference",
    "reference_enabled",
    "use_reference",
    "without_custom_calls",
]
