"""Training and inference speed of the registry models: one JSON line per (model, batch, frames).

    python -m experiments.benchmark --models stgcn,agcn --batch 16 --frames 60
    python -m experiments.benchmark --models all --batch 16,64 --frames 60 --steps 10
    python -m experiments.benchmark --models stgcn --override dropout=0.0

Measures a jitted SGD (Nesterov, weight decay) train step and a jitted eval
forward pass on random inputs ``(batch, bodies, frames, 25, 3)``: seconds
to initialise the parameters and optimizer state (``init_s``: mostly the
compilation of ``model.init``, whose random draws XLA compiles one by one),
compile seconds, median clips/s over ``--steps`` timed calls after warm-up, the device
memory XLA planned for one train step and one forward pass
(``train_step_bytes``, ``infer_step_bytes``), the device allocator's peak for
the whole process so far where the backend reports one (``peak_memory_bytes``;
GPU/TPU; CPU reports none; it only grows, so run one model per process for a
per-model figure), and the host memory allocator with the process's minor
page faults per train step (``host_allocator``, ``train_page_faults_per_step``;
``--allocator tcmalloc`` restarts under tcmalloc, see
``smg_jax.runtime.allocator``), and what ran the temporal convolutions
(``temporal_convolutions``: ``onednn <version>`` on CPU, else ``xla``; see
``smg_jax.runtime.onednn``). The runtime profile is the default one
(``smg_jax.runtime.profile``; its ``SMG_JAX_*`` overrides apply), set up
before the first model. The same command runs unchanged on CPU, GPU and TPU.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import torch_reference_benchmark
from smg_jax import models, runtime
from smg_jax.runtime import allocator, onednn, xla
from smg_jax.train import losses, optim
from smg_jax.train import state as state_lib
from smg_jax.train import steps as step_fns

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _config(lr: float = 0.1) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9, "nesterov": True,
                          "weight_decay": 1e-4, "weight_decay_on": "all",
                          "weight_decay_rules": "", "grad_clip_norm": 0.0},
            "schedule": {"name": "constant", "warmup_epochs": 0, "per_step": False},
            "loss": {"name": "cross_entropy"},
        }
    )  # fmt: skip


def _peak_memory_bytes() -> int | None:
    stats = jax.local_devices()[0].memory_stats()
    if not stats:
        return None
    return int(stats.get("peak_bytes_in_use", stats.get("bytes_in_use", 0))) or None


def _compiled_bytes(compiled: Any) -> int | None:
    """Device memory XLA planned for one call of ``compiled``, in bytes.

    Arguments + outputs + temporaries - donated (aliased) bytes, from XLA's
    buffer assignment. Unlike the allocator's peak, this belongs to this
    executable alone, and CPU reports it too. (``peak_memory_in_bytes`` is not
    used: XLA:CPU leaves it at about the argument size.)
    """
    try:
        stats = compiled.memory_analysis()
    except (AttributeError, NotImplementedError, RuntimeError):
        return None
    if stats is None:
        return None
    total = (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )
    return int(total) or None


def _timed(fn, *args, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return times


def _prepare(name: str, batch: int, frames: int, bodies: int, num_classes: int, dtype: str,
           overrides: dict[str, Any] | None) -> tuple[Any, ...]:  # fmt: skip
    """The model, its initial train state (timed), a random batch and the two jitted steps."""
    fields = dict(overrides or {})
    if dtype != "float32":
        fields["dtype"] = _DTYPES[dtype]
    model = models.create(name, num_classes=num_classes, num_persons=bodies, **fields)
    config = _config()
    schedule = optim.make_schedule(config, steps_per_epoch=1, total_epochs=1)
    tx = optim.make_optimizer(config, schedule)
    shape = (batch, bodies, frames, 25, 3)
    start = time.perf_counter()
    variables = state_lib.init_variables(model, jax.random.PRNGKey(0), shape)
    train_state = jax.block_until_ready(
        state_lib.create_train_state(variables, tx, jax.random.PRNGKey(1))
    )
    init_seconds = time.perf_counter() - start
    rng = np.random.default_rng(0)
    batch_data = {
        "x": jnp.asarray(rng.normal(size=shape), jnp.float32),
        "label": jnp.asarray(rng.integers(0, num_classes, batch), jnp.int32),
        "mask": jnp.ones((batch,), bool),
    }
    train_fn = xla.jit(
        functools.partial(
            step_fns.train_step, model=model, tx=tx, loss_fn=losses.make_loss(config)
        ),
        donate_argnums=(0,),
    )
    eval_fn = xla.jit(
        functools.partial(step_fns.eval_step, model=model), inference=True, model_name=name
    )
    return train_state, init_seconds, batch_data, train_fn, eval_fn


def _compile(fn: Any, *args: Any) -> tuple[Any, float]:
    """``fn`` lowered and compiled for ``args``, and the seconds that took."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def _measure(compiled_train: Any, compiled_eval: Any, train_state: Any, batch_data: dict,
             steps: int, warmup: int) -> tuple[list[float], list[float], float, Any]:  # fmt: skip
    """Train and eval call times, minor page faults per train step, and the trained state."""
    holder = {"state": train_state}

    def run_train(data):
        holder["state"], metrics = compiled_train(holder["state"], data)
        return metrics["loss"]

    for _ in range(warmup):
        jax.block_until_ready(run_train(batch_data))
    faults = allocator.minor_page_faults()
    train_times = _timed(run_train, batch_data, steps=steps)
    train_faults = (allocator.minor_page_faults() - faults) / steps
    for _ in range(warmup):
        jax.block_until_ready(compiled_eval(holder["state"], batch_data))
    eval_times = _timed(compiled_eval, holder["state"], batch_data, steps=steps)
    return train_times, eval_times, train_faults, holder["state"]


def benchmark(
    name: str,
    *,
    batch: int,
    frames: int,
    bodies: int = 1,
    num_classes: int = 17,
    steps: int = 5,
    warmup: int = 2,
    dtype: str = "float32",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Times one model; returns the JSON-ready row."""
    train_state, init_seconds, batch_data, train_fn, eval_fn = _prepare(
        name, batch, frames, bodies, num_classes, dtype, overrides
    )
    compiled_train, train_compile = _compile(train_fn, train_state, batch_data)
    compiled_eval, eval_compile = _compile(eval_fn, train_state, batch_data)
    train_times, eval_times, train_faults, train_state = _measure(
        compiled_train, compiled_eval, train_state, batch_data, steps, warmup
    )
    return {
        "model": name,
        "backend": jax.default_backend(),
        "device": str(jax.local_devices()[0].device_kind),
        "batch": batch,
        "frames": frames,
        "bodies": bodies,
        "dtype": dtype,
        "overrides": {key: repr(value) for key, value in (overrides or {}).items()},
        "params": state_lib.count_params(train_state.params),
        "train_clips_per_s": round(batch / statistics.median(train_times), 2),
        "infer_clips_per_s": round(batch / statistics.median(eval_times), 2),
        "init_s": round(init_seconds, 2),
        "train_compile_s": round(train_compile, 2),
        "infer_compile_s": round(eval_compile, 2),
        "train_step_bytes": _compiled_bytes(compiled_train),
        "infer_step_bytes": _compiled_bytes(compiled_eval),
        "peak_memory_bytes": _peak_memory_bytes(),
        "host_allocator": allocator.in_use(),
        "temporal_convolutions": onednn.describe(),
        "train_page_faults_per_step": round(train_faults),
        "timed_steps": steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="stgcn", help="comma-separated names, or 'all'")
    parser.add_argument("--batch", default="16", help="comma-separated batch sizes")
    parser.add_argument("--frames", default="60", help="comma-separated frame counts")
    parser.add_argument("--bodies", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed calls (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="float32")
    parser.add_argument(
        "--override", action="append", default=[], help="model field name=value (repeatable)"
    )
    parser.add_argument(
        "--allocator",
        choices=allocator.CHOICES,
        help="restart under this host memory allocator first (smg_jax.runtime.allocator)",
    )
    args = parser.parse_args(argv)
    if args.allocator is not None and args.allocator != allocator.in_use():
        if argv is not None:  # called as a function: restarting would replace the caller
            raise SystemExit("--allocator switches allocators only when run as a program.")
        try:
            allocator.restart_with(args.allocator)
        except allocator.AllocatorError as error:
            raise SystemExit(f"error: {error}") from None
    runtime.setup(runtime.config_section(compilation_cache=""))
    overrides = torch_reference_benchmark.parse_assignments(args.override, "--override")
    names = list(models.MODELS) if args.models == "all" else args.models.split(",")
    for name in names:
        for batch in (int(b) for b in args.batch.split(",")):
            for frames in (int(f) for f in args.frames.split(",")):
                row = benchmark(
                    name,
                    batch=batch,
                    frames=frames,
                    bodies=args.bodies,
                    steps=args.steps,
                    warmup=args.warmup,
                    dtype=args.dtype,
                    overrides=overrides,
                )
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
