"""A small L2-regularised logistic regression in JAX (full batch, L-BFGS through optax).

It is the "small classifier" over per-instance MG features: a few dozen
features, at most a few hundred instances. Features are standardised with the
training instances' mean and standard deviation, so that the coefficients are
comparable across features ("how much one standard deviation more of this MG
moves the log-odds towards stressed"), which is what the class-weight table
reports.

The objective is scikit-learn's ``LogisticRegression(C=C)``:
``C * sum_i log(1 + exp(-y_i (w . x_i + b))) + 0.5 * |w|^2`` (the intercept
is not penalised), divided by ``C * n`` for a well-scaled loss; the tests
compare the fitted coefficients with scikit-learn's where it is installed.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from smg_jax.emotion.data import EmotionError


@dataclasses.dataclass(frozen=True)
class LogisticModel:
    """A fitted binary logistic regression on standardised features.

    Attributes:
      mean, scale: ``(D,)`` the training features' mean and standard deviation
        (1 where a feature is constant in training, so it contributes nothing).
      coef: ``(D,)`` weights on the standardised features; positive pushes
        towards class 1 (stressed).
      intercept: the bias.
      iterations: L-BFGS iterations run; ``grad_norm``: the final gradient norm.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    iterations: int
    grad_norm: float

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """``(N,)`` log-odds of class 1 for ``(N, D)`` raw (unstandardised) features."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        return z @ self.coef + self.intercept

    def logits(self, features: np.ndarray) -> np.ndarray:
        """``(N, 2)`` two-class logits ``[0, log-odds]`` (softmax gives the probabilities)."""
        score = self.decision_function(features)
        return np.stack([np.zeros_like(score), score], axis=1)


def _objective(params, x, y_sign, c):
    w, b = params
    margins = y_sign * (x @ w + b)
    n = x.shape[0]
    return jnp.sum(jax.nn.softplus(-margins)) / n + 0.5 * jnp.sum(w * w) / (c * n)


@functools.partial(jax.jit, static_argnames=("max_iter",))
def _fit(x, y_sign, c, tol, max_iter: int):
    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(_objective)
    params = (jnp.zeros(x.shape[1], x.dtype), jnp.zeros((), x.dtype))

    def step(carry):
        params, state, _, i = carry
        value, grad = value_and_grad(params, x, y_sign, c, state=state)
        updates, state = solver.update(
            grad,
            state,
            params,
            value=value,
            grad=grad,
            value_fn=_objective,
            x=x,
            y_sign=y_sign,
            c=c,
        )
        params = optax.apply_updates(params, updates)
        return params, state, optax.tree.norm(grad), i + 1

    def keep_going(carry):
        _, _, grad_norm, i = carry
        return (i < max_iter) & (grad_norm > tol)

    init = (params, solver.init(params), jnp.asarray(jnp.inf, x.dtype), jnp.asarray(0))
    params, _, grad_norm, iterations = jax.lax.while_loop(keep_going, step, init)
    return params, grad_norm, iterations


def fit_logistic(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    c: float = 1.0,
    max_iter: int = 500,
    tol: float = 1e-6,
) -> LogisticModel:
    """Fits the model on ``(N, D)`` raw features and ``(N,)`` labels in ``{0, 1}``.

    Args:
      c: inverse regularisation strength (scikit-learn's ``C``); smaller is stronger.
      max_iter: L-BFGS iteration limit.
      tol: stop when the gradient norm falls below this.

    Raises:
      EmotionError: shapes disagree, labels are not 0/1, features are not
        finite, or only one class is present (nothing to separate).
    """
    x = np.asarray(features, np.float64)
    y = np.asarray(labels).astype(np.int64)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise EmotionError(f"features must be (N, D) and labels (N,); got {x.shape}, {y.shape}.")
    if not np.isin(y, (0, 1)).all():
        raise EmotionError(f"labels must be 0 or 1; found {sorted(set(y.tolist()))}.")
    if len(set(y.tolist())) < 2:
        raise EmotionError(
            f"The {len(y)} training instances are all {'stressed' if y[0] else 'relaxed'}; "
            "a classifier needs both states (use more training participants)."
        )
    if not np.isfinite(x).all():
        raise EmotionError("Non-finite MG features; check the instances' lengths and fps.")
    if c <= 0:
        raise EmotionError(f"mg.c={c} must be positive.")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    params, grad_norm, iterations = _fit(
        jnp.asarray(z, jnp.float32),
        jnp.asarray(2.0 * y - 1.0, jnp.float32),
        jnp.float32(c),
        jnp.float32(tol),
        max_iter=int(max_iter),
    )
    w, b = params
    return LogisticModel(
        mean=mean,
        scale=scale,
        coef=np.asarray(w, np.float64),
        intercept=float(b),
        iterations=int(iterations),
        grad_norm=float(grad_norm),
    )
