"""``jax.jit`` with the XLA options that make our training and evaluation steps fast.

On the CPU backend, XLA hands dots, convolutions and (with these options)
elementwise and reduction fusions to its YNNPACK library, which runs them
multi-threaded. Measured on 2 cores (batch 16, 60 frames, ST-GCN): 1.5x the
training clips/s of XLA's default fusions; golden parity is unchanged.
Inference uses them too (5-15 % more clips/s for ST-GCN, 2s-AGCN and
CTR-GCN) except for models that set ``cpu_inference_elementwise_fusions =
False``: Shift-GCN, whose gathered shifts ran at half speed inside them. GPU
and TPU get no extra options.

Set ``SMG_JAX_CPU_LIBRARY_FUSIONS=0`` to compile with XLA's defaults (to
compare, or if a future jaxlib misbehaves). A jaxlib that does not know an
option is detected once and falls back to the defaults with a warning.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

import jax

log = logging.getLogger(__name__)

ENV_SWITCH = "SMG_JAX_CPU_LIBRARY_FUSIONS"


def _fusions(*kinds: str) -> dict[str, str]:
    return {
        "xla_cpu_experimental_ynn_fusion_type": ",".join(
            f"LIBRARY_FUSION_TYPE_{kind}" for kind in kinds
        )
    }


CPU_OPTIONS = _fusions("DOT", "ELTWISE", "REDUCE", "INDIVIDUAL_CONVOLUTION")
CPU_OPTIONS_WITHOUT_ELEMENTWISE = _fusions("DOT", "REDUCE", "INDIVIDUAL_CONVOLUTION")


@functools.cache
def _options_for(backend: str, enabled: bool, elementwise: bool) -> tuple[tuple[str, str], ...]:
    if backend != "cpu" or not enabled:
        return ()
    options = CPU_OPTIONS if elementwise else CPU_OPTIONS_WITHOUT_ELEMENTWISE
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
    except Exception as error:  # an option this jaxlib does not know
        log.warning("XLA CPU options %s refused (%s); using XLA's defaults.", options, error)
        return ()
    return tuple(options.items())


def compiler_options(
    backend: str | None = None, *, inference: bool = False, model: Any = None
) -> dict[str, str]:
    """The options ``jit`` passes for ``backend`` (default: JAX's default backend).

    ``inference`` with a ``model`` whose ``cpu_inference_elementwise_fusions``
    is ``False`` leaves the elementwise fusions out.
    """
    enabled = os.environ.get(ENV_SWITCH, "1").strip().lower() not in {"0", "false", "no", "off"}
    elementwise = not inference or getattr(model, "cpu_inference_elementwise_fusions", True)
    return dict(_options_for(backend or jax.default_backend(), enabled, elementwise))


def jit(
    fun: Callable[..., Any], *, inference: bool = False, model: Any = None, **kwargs: Any
) -> Any:
    """``jax.jit(fun, **kwargs)`` plus ``compiler_options()`` for the default backend.

    ``inference=True`` for forward-only programs (evaluation, prediction) of ``model``.
    """
    options = compiler_options(inference=inference, model=model)
    return jax.jit(fun, compiler_options=options or None, **kwargs)
