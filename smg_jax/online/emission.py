"""The emission networks of the authors' recognizer, in Flax, and their Keras loss.

Two networks from the authors' ``Att_BiLSTM_training.py``:

``mlp`` (``build_model2``, what the released ``main.py`` trains, ``netmodel = 2``)
    on one flat 2,775-value row: Dense 2000 sigmoid, dropout 0.1, Dense 2000
    sigmoid, dropout 0.1, BatchNorm, Dense 86 softmax.
``att_bigru`` (``build_model1``, the paper's AED-BiLSTM)
    on ``(steps, features)``: BiGRU ``2 units`` (2000) -> temporal softmax
    attention -> BiGRU ``units`` (1000) -> feature-wise softmax attention ->
    Dense 1000 ReLU (per step) -> dropout 0.3 -> BatchNorm -> flatten ->
    Dense 86 sigmoid. What the steps are is the caller's choice (see
    ``framework.WINDOW_INPUTS``).

Keras defaults are kept where they change results: Glorot-uniform kernels,
zero biases, orthogonal recurrent kernels, BatchNorm momentum 0.99 and
epsilon 1e-3, the CuDNN GRU (reset gate after the recurrent product, which
is Flax's ``GRUCell``). Modules return pre-activation logits ``(B, 86)``;
``OUTPUTS[name]`` says which activation makes them the network's outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from smg_jax import registry
from smg_jax.online.errors import OnlineError

_glorot = nn.initializers.glorot_uniform()
_KERAS_BN = dict(momentum=0.99, epsilon=1e-3)
# Keras clips probabilities to [eps, 1 - eps] inside categorical_crossentropy.
KERAS_EPSILON = 1e-7


class EmissionMLP(nn.Module):
    """The released emission network: ``(B, ...)`` (flattened) -> ``(B, num_states)`` logits."""

    num_states: int = 86
    hidden: Sequence[int] = (2000, 2000)
    dropout: float = 0.1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            x = nn.sigmoid(nn.Dense(int(width), kernel_init=_glorot)(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.BatchNorm(use_running_average=not train, **_KERAS_BN)(x)
        return nn.Dense(self.num_states, kernel_init=_glorot)(x)


class _BiGRU(nn.Module):
    """Keras' ``Bidirectional(CuDNNGRU(units, return_sequences=True))``: (B, T, F) -> (B, T, 2u).

    Flax's ``GRUCell`` applies the reset gate after the recurrent product, as CuDNN does.
    """

    units: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        def cell():
            return nn.GRUCell(self.units, kernel_init=_glorot)

        return nn.Bidirectional(nn.RNN(cell()), nn.RNN(cell()))(x)


class AttentionBiGRU(nn.Module):
    """The paper's attention BiGRU: ``(B, T, F)`` -> ``(B, num_states)`` logits.

    Its outputs are sigmoids of the logits (not a softmax), as in ``build_model1``.
    """

    num_states: int = 86
    units: int = 1000
    dense: int = 1000
    dropout: float = 0.3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.ndim != 3:
            raise OnlineError(f"att_bigru takes (B, steps, features), got {x.shape}.")
        steps = x.shape[1]
        x = _BiGRU(2 * self.units)(x)
        # Temporal attention (attention_3d_block): for every feature, softmax weights over
        # the steps from a Dense(steps) applied to that feature's step profile.
        profile = jnp.swapaxes(x, 1, 2)  # (B, F, T)
        weights = nn.softmax(nn.Dense(steps, kernel_init=_glorot)(profile), axis=-1)
        x = x * jnp.swapaxes(weights, 1, 2)
        x = _BiGRU(self.units)(x)
        # Feature-wise attention (attention_spatial_block): softmax over features per step.
        x = x * nn.softmax(nn.Dense(x.shape[-1], kernel_init=_glorot)(x), axis=-1)
        x = nn.relu(nn.Dense(self.dense, kernel_init=_glorot)(x))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.BatchNorm(use_running_average=not train, **_KERAS_BN)(x)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_states, kernel_init=_glorot)(x)


# Not in ``smg_jax.models.MODELS``: that table holds skeleton classifiers ((N, M, T, V, C)
# -> logits, PyTorch loaders); these map feature rows to HMM-state logits. Both tables are
# read through ``smg_jax.registry.lookup``.
@dataclasses.dataclass(frozen=True)
class _Entry:
    module: type[nn.Module]
    output: str  # "softmax" or "sigmoid"


EMISSION_MODELS: dict[str, _Entry] = {
    "mlp": _Entry(EmissionMLP, "softmax"),
    "att_bigru": _Entry(AttentionBiGRU, "sigmoid"),
}


def _entry(name: str) -> _Entry:
    return registry.lookup(EMISSION_MODELS, name, what="emission model", error=OnlineError)


def create(name: str, *, num_states: int, **overrides: Any) -> nn.Module:
    """Emission network ``name`` (``mlp`` or ``att_bigru``) with field ``overrides``."""
    module = _entry(name).module
    fields = {f.name for f in dataclasses.fields(module)} - {"parent", "name", "num_states"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise OnlineError(
            f"Unknown field(s) {unknown} for emission model {name!r}; valid: {sorted(fields)}."
        )
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return module(num_states=num_states, **overrides)


def output_of(name: str) -> str:
    """``"softmax"`` or ``"sigmoid"``: the output activation of emission model ``name``."""
    return _entry(name).output


def log_outputs(logits: jax.Array, output: str) -> jax.Array:
    """Log of the network's outputs ``y`` from its logits, without underflow to ``log 0``."""
    if output == "softmax":
        return jax.nn.log_softmax(logits, axis=-1)
    return jax.nn.log_sigmoid(logits)


def keras_categorical_crossentropy(output: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Keras' ``categorical_crossentropy`` on softmax or sigmoid outputs, as a per-example loss.

    Keras divides the outputs by their sum (a no-op for softmax, not for the
    BiGRU's sigmoids), clips them to ``[1e-7, 1 - 1e-7]`` and takes
    ``-log y[label]``. Returns ``loss_fn(logits (B, K), labels (B,)) -> (B,)``
    for ``smg_jax.train.steps.train_step``.
    """
    low, high = jnp.log(KERAS_EPSILON), jnp.log1p(-KERAS_EPSILON)

    def loss_fn(logits: jax.Array, labels: jax.Array) -> jax.Array:
        logs = log_outputs(logits.astype(jnp.float32), output)
        normalized = logs - jax.nn.logsumexp(logs, axis=-1, keepdims=True)
        picked = jnp.take_along_axis(normalized, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
        return -jnp.clip(picked, low, high)

    return loss_fn
