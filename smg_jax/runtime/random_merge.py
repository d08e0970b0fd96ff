"""Run ``model.init`` as a program of a few kernels instead of hundreds.

``model.init`` draws every kernel from its own key: CTR-GCN's init makes
177 ``fold_in`` and 177 ``random_bits`` calls and returns 576 leaves, and XLA
compiles a kernel for each draw, for each draw's transform (uniform, erf_inv,
scale) and for each output, so compiling ``init`` took longer than compiling
the training step (figures in docs/performance.md).

:func:`call_with_merged_draws` traces the function, inlines its pure calls,
drops dead equations (the forward pass that ``init`` runs), and compiles
instead:

* the key derivations level by level, each level's ``fold_in`` calls as one
  vmapped ``fold_in``;
* every draw at once, as one Threefry-2x32 hash over the concatenated
  (key, counter) pairs: the hash is elementwise, and under JAX's
  partitionable Threefry element ``i`` of a draw is the hash of its key and
  flat index ``i``, so these are the same bits;
* the output leaves that are the same function of their draws (every kernel
  of one initializer and shape; every zero bias of one shape) as one vmapped
  computation, split into leaves on the host.

For CTR-GCN that is 54 groups and about 85 kernels; its init takes 2.2 s
on 2 cores instead of 13 s (every model: docs/performance.md).

The leaves are bitwise those of ``jax.jit(fun)(*args)``
(``tests/test_random_merge.py``; ``SMG_SLOW=full`` checks every registered
model). What the plan does not recognise (another PRNG implementation or
setting, an output that reads the function's arguments or keys) is computed
as the function has it, its draws still merged level by level.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core
from jax.extend import random as jex_random

_FOLD_IN = "random_fold_in"
_BITS = "random_bits"
_KEY_VIEWS = ("random_wrap", "random_unwrap")
_INLINED_CALLS = ("jit", "pjit", "closed_call", "core_call")
_BIT_DTYPES = {8: jnp.uint8, 16: jnp.uint16, 32: jnp.uint32}
_MAX_MERGED_ELEMENTS = 2**31 - 1


@dataclass(eq=False)
class _Op:
    """One equation of the flattened program; inputs are value ids or literals."""

    eqn: Any
    inputs: list[Any]
    outputs: list[int]

    @property
    def name(self) -> str:
        return self.eqn.primitive.name


class _Literal:
    """A literal or closed-over constant: a value, not a slot."""

    def __init__(self, value: Any):
        self.value = value


@dataclass(eq=False)
class _Row:
    """Row ``index`` of ``batch``: a value computed inside a vmapped call, kept unsliced."""

    batch: Any
    index: int


@dataclass(eq=False)
class _Cone:
    """The ops that turn some draws (and literals) into one output leaf."""

    ops: list[_Op]
    draws: list[int]  # ids of the random_bits values it reads, in first-use order
    result: Any  # id or literal
    signature: tuple


def merging_applies() -> bool:
    """Whether the default PRNG is partitionable Threefry, the case the merge reproduces."""
    return jax.config.jax_default_prng_impl == "threefry2x32" and bool(
        jax.config.jax_threefry_partitionable
    )


def call_with_merged_draws(fun: Callable[..., Any], *args: Any) -> Any:
    """``jax.jit(fun)(*args)``, compiled with its random draws and outputs merged.

    ``fun`` must be pure and take and return pytrees of arrays, as
    ``model.init`` does. Returns the same tree, bitwise, on JAX's default
    device. Falls back to ``jax.jit(fun)(*args)`` when
    :func:`merging_applies` is false.
    """
    if not merging_applies():
        return jax.jit(fun)(*args)
    flat_args, in_tree = jax.tree_util.tree_flatten(args)
    out_tree_box: list[Any] = []

    def flat_fun(*leaves: Any) -> list[Any]:
        out = fun(*jax.tree_util.tree_unflatten(in_tree, leaves))
        out_leaves, out_tree = jax.tree_util.tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    closed = jax.make_jaxpr(flat_fun)(*flat_args)
    plan = _Plan(closed, len(flat_args))
    if plan.draw_elements() >= _MAX_MERGED_ELEMENTS:
        return jax.jit(fun)(*args)  # one hash's int32 element index would overflow
    plain_values, grouped = jax.jit(plan.run)(*flat_args)

    leaves: list[Any] = [None] * len(plan.outputs)
    for index, value in zip(plan.plain, plain_values, strict=True):
        leaves[index] = value
    for members, value in zip(plan.groups, jax.device_get(grouped), strict=True):
        stacked = _is_stacked(members)
        for row, (index, _) in enumerate(members):
            leaves[index] = jnp.asarray(value[row] if stacked else value)
    return jax.tree_util.tree_unflatten(out_tree_box[0], leaves)


def _is_stacked(members: list[tuple[int, _Cone]]) -> bool:
    """A group is computed once per member only when its cone reads draws; constants once in all."""
    return bool(members[0][1].draws)


class _Plan:
    """The flattened program, split into key derivation, draws and grouped output cones."""

    def __init__(self, closed: Any, num_args: int):
        ops, self.arg_ids, self.outputs = _flatten(closed, num_args)
        ops = _live(ops, self.outputs)
        self.producer = {out: op for op in ops for out in op.outputs}
        order = {id(op): position for position, op in enumerate(ops)}
        groups: dict[tuple, list[tuple[int, _Cone]]] = {}
        self.plain: list[int] = []
        for index, output in enumerate(self.outputs):
            cone = _cone(output, self.producer, order)
            if cone is None:
                self.plain.append(index)
            else:
                groups.setdefault(cone.signature, []).append((index, cone))
        self.groups = list(groups.values())
        self.deferred_draws = {
            ref for members in self.groups for _, cone in members for ref in cone.draws
        }
        # The level schedule computes the plain outputs and the keys of every deferred draw.
        needed = [self.outputs[i] for i in self.plain] + [
            self.producer[ref].inputs[0] for ref in self.deferred_draws
        ]
        self.core = _live(ops, needed)

    def draw_elements(self) -> int:
        """Elements drawn in all by the mergeable draws (the largest hash the plan makes)."""
        return sum(
            int(np.prod(op.eqn.params["shape"]))
            for op in {*self.producer.values()}
            if op.name == _BITS and _mergeable(op)
        )

    def run(self, *flat_args: Any) -> tuple[list[Any], list[Any]]:
        """The traced body: plain outputs, then one array per group (stacked over members)."""
        values = _Values(dict(zip(self.arg_ids, flat_args, strict=True)))
        _evaluate_levels(self.core, self.arg_ids, values)

        # One block per (group, draw slot): its members' draws, which share a
        # shape, lie side by side in the hash's output and come out stacked.
        slots = [
            (position, slot)
            for position, members in enumerate(self.groups)
            if _is_stacked(members)
            for slot in range(len(members[0][1].draws))
        ]
        blocks = [
            [self.producer[cone.draws[slot]] for _, cone in self.groups[position]]
            for position, slot in slots
        ]
        by_slot = dict(zip(slots, _draw_blocks(values, blocks), strict=True))

        plain_values = [values.read(self.outputs[i]) for i in self.plain]
        grouped = []
        for position, members in enumerate(self.groups):
            first = members[0][1]
            if not _is_stacked(members):
                grouped.append(_evaluate_cone(first, []))
                continue
            stacked = [by_slot[(position, slot)] for slot in range(len(first.draws))]
            grouped.append(
                jax.vmap(lambda *draws, cone=first: _evaluate_cone(cone, draws))(*stacked)
            )
        return plain_values, grouped


class _Values:
    """Values by id; fold_in results stay rows of their batched call until read alone."""

    def __init__(self, initial: dict[int, Any]):
        self.values: dict[int, Any] = dict(initial)
        self._views: dict[tuple[str, int], Any] = {}

    def read(self, ref: Any) -> Any:
        if isinstance(ref, _Literal):
            return ref.value
        value = self.values[ref]
        return value.batch[value.index] if isinstance(value, _Row) else value

    def stack(self, refs: Sequence[Any]) -> Any:
        """The values of ``refs`` along a new leading axis, in as few ops as possible."""
        raw = [ref.value if isinstance(ref, _Literal) else self.values[ref] for ref in refs]
        if all(isinstance(v, _Row) for v in raw) and len({id(v.batch) for v in raw}) == 1:
            batch = raw[0].batch
            rows = [v.index for v in raw]
            if rows == list(range(batch.shape[0])):
                return batch
            return batch[np.asarray(rows)]
        if all(isinstance(ref, _Literal) and np.ndim(ref.value) == 0 for ref in refs):
            # Each literal's own dtype (fold_in data are uint32 past 2**31).
            return jnp.asarray(np.stack([np.asarray(ref.value) for ref in refs]))
        if len({id(v) for v in raw}) == 1:
            one = self.read(refs[0])
            return jnp.broadcast_to(one, (len(refs), *jnp.shape(one)))
        return jnp.stack([self.read(ref) for ref in refs])

    def bind(self, op: _Op) -> None:
        """Evaluates ``op``; a key view of a row is applied to the whole batch once."""
        first = op.inputs[0] if op.inputs else None
        source = self.values.get(first) if isinstance(first, int) else None
        if op.name in _KEY_VIEWS and isinstance(source, _Row):
            cache = (op.name, id(source.batch))
            if cache not in self._views:
                self._views[cache] = _bind(op.eqn, [source.batch])[0]
            self.values[op.outputs[0]] = _Row(self._views[cache], source.index)
            return
        results = _bind(op.eqn, [self.read(i) for i in op.inputs])
        self.values.update(zip(op.outputs, results, strict=True))


def _flatten(closed: Any, num_args: int) -> tuple[list[_Op], list[int], list[Any]]:
    """The program as one list of ops with pure calls inlined: (ops, argument ids, outputs)."""
    ids = itertools.count()
    ops: list[_Op] = []

    def run(jaxpr: Any, consts: Sequence[Any], inputs: Sequence[Any]) -> list[Any]:
        env: dict[Any, Any] = {
            var: _Literal(c) for var, c in zip(jaxpr.constvars, consts, strict=True)
        }
        env.update(zip(jaxpr.invars, inputs, strict=True))

        def read(atom: Any) -> Any:
            return _Literal(atom.val) if isinstance(atom, jex_core.Literal) else env[atom]

        for eqn in jaxpr.eqns:
            inputs_here = [read(v) for v in eqn.invars]
            sub = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
            if eqn.primitive.name in _INLINED_CALLS and not eqn.effects and sub is not None:
                if isinstance(sub, jex_core.ClosedJaxpr):
                    results = run(sub.jaxpr, sub.consts, inputs_here)
                else:
                    results = run(sub, (), inputs_here)
                env.update(zip(eqn.outvars, results, strict=True))
                continue
            outputs = [next(ids) for _ in eqn.outvars]
            ops.append(_Op(eqn, inputs_here, outputs))
            env.update(zip(eqn.outvars, outputs, strict=True))
        return [read(v) for v in jaxpr.outvars]

    arg_ids = [next(ids) for _ in range(num_args)]
    outs = run(closed.jaxpr, closed.consts, arg_ids)
    return ops, arg_ids, outs


def _live(ops: list[_Op], needed_refs: Sequence[Any]) -> list[_Op]:
    """The ops that ``needed_refs`` depend on (and any with effects), in program order."""
    needed = {ref for ref in needed_refs if isinstance(ref, int)}
    kept = []
    for op in reversed(ops):
        if op.eqn.effects or needed.intersection(op.outputs):
            kept.append(op)
            needed.update(ref for ref in op.inputs if isinstance(ref, int))
    kept.reverse()
    return kept


def _mergeable(op: _Op) -> bool:
    if op.name == _FOLD_IN:
        return (
            all(v.aval.shape == () for v in op.eqn.invars)
            and str(op.eqn.invars[0].aval.dtype) == "key<fry>"
        )
    if op.name == _BITS:
        return (
            op.eqn.invars[0].aval.shape == ()
            and op.eqn.params["bit_width"] in _BIT_DTYPES
            and str(op.eqn.invars[0].aval.dtype) == "key<fry>"
        )
    return False


def _cone(output: Any, producer: dict[int, _Op], order: dict[int, int]) -> _Cone | None:
    """The output's backward closure down to mergeable draws; None if it reads anything else."""
    if isinstance(output, _Literal):
        return None
    ops: dict[int, _Op] = {}
    draws: set[int] = set()
    stack = [output]
    while stack:
        ref = stack.pop()
        if isinstance(ref, _Literal) or ref in draws:
            continue
        op = producer.get(ref)
        if op is None or op.eqn.effects or op.name == _FOLD_IN or op.name in _KEY_VIEWS:
            return None  # reads an argument or a key: not a function of draws alone
        if op.name == _BITS:
            if not _mergeable(op):
                return None
            draws.add(ref)
        elif id(op) not in ops:
            ops[id(op)] = op
            stack.extend(op.inputs)
    cone_ops = sorted(ops.values(), key=lambda op: order[id(op)])
    local: dict[int, tuple] = {}
    first_use: list[int] = []

    def describe(ref: Any) -> tuple:
        if isinstance(ref, _Literal):
            value = ref.value
            if np.ndim(value) == 0 and not isinstance(value, jax.Array):
                return ("literal", repr(value), str(np.asarray(value).dtype))
            return ("constant", id(value))  # the same object only: never equal by value
        if ref in local:
            return local[ref]
        if ref not in first_use:
            first_use.append(ref)
        draw = producer[ref].eqn
        return ("draw", first_use.index(ref), str(draw.outvars[0].aval), draw.params["bit_width"])

    described = []
    for position, op in enumerate(cone_ops):
        described.append(
            (
                op.name,
                repr(sorted(op.eqn.params.items(), key=lambda item: item[0])),
                tuple(describe(ref) for ref in op.inputs),
                tuple(str(v.aval) for v in op.eqn.outvars),
            )
        )
        local.update({out: ("op", position, slot) for slot, out in enumerate(op.outputs)})
    signature = (tuple(described), describe(output))
    return _Cone(cone_ops, first_use, output, signature)


def _evaluate_cone(cone: _Cone, draws: Sequence[Any]) -> Any:
    values = _Values(dict(zip(cone.draws, draws, strict=True)))
    for op in cone.ops:
        values.bind(op)
    return values.read(cone.result)


def _evaluate_levels(ops: list[_Op], arg_ids: list[int], values: _Values) -> None:
    """Binds ``ops``, each dependency level's fold_ins as one call and its draws as one hash."""
    depth: dict[int, int] = dict.fromkeys(arg_ids, 0)
    levels: dict[int, tuple[list[_Op], list[_Op]]] = {}
    for op in ops:
        base = max((depth[ref] for ref in op.inputs if isinstance(ref, int)), default=0)
        merged = _mergeable(op)
        levels.setdefault(base, ([], []))[1 if merged else 0].append(op)
        for out in op.outputs:
            depth[out] = base + 1 if merged else base
    for level in sorted(levels):
        plain, random_ops = levels[level]
        for op in plain:
            values.bind(op)
        fold_ins = [op for op in random_ops if op.name == _FOLD_IN]
        if fold_ins:
            keys = values.stack([op.inputs[0] for op in fold_ins])
            data = values.stack([op.inputs[1] for op in fold_ins]).astype(jnp.uint32)
            folded = jax.vmap(jax.random.fold_in)(keys, data)
            for row, op in enumerate(fold_ins):
                values.values[op.outputs[0]] = _Row(folded, row)
        draws = [op for op in random_ops if op.name == _BITS]
        for op, bits in zip(draws, _draw_blocks(values, [[op] for op in draws]), strict=True):
            values.values[op.outputs[0]] = bits.reshape(bits.shape[1:])


def _draw_blocks(values: _Values, blocks: list[list[_Op]]) -> list[Any]:
    """``jax.random.bits`` of each block of draw ops (one shape and bit width per block),
    stacked: ``(len(block), *shape)``; one Threefry hash per bit width in all."""
    results: list[Any] = [None] * len(blocks)
    width_of = [block[0].eqn.params["bit_width"] for block in blocks]
    for width in sorted(set(width_of)):
        chosen = [i for i, w in enumerate(width_of) if w == width]
        ops = [op for i in chosen for op in blocks[i]]
        sizes = [int(np.prod(op.eqn.params["shape"])) for op in ops]
        bits = _threefry_bits(values.stack([op.inputs[0] for op in ops]), sizes, width)
        offset = 0
        for i in chosen:
            shape = tuple(blocks[i][0].eqn.params["shape"])
            size = len(blocks[i]) * int(np.prod(shape))
            results[i] = bits[offset : offset + size].reshape(len(blocks[i]), *shape)
            offset += size
    return results


def _threefry_bits(keys: Any, sizes: list[int], width: int) -> Any:
    """``jax.random.bits(keys[j], (sizes[j],))`` for every ``j``, concatenated, as one hash.

    Partitionable Threefry gives element ``i`` (flat index) of a draw the
    hash of its key and the counter ``(i >> 32, i & 0xFFFFFFFF)``, reduced to
    ``width`` bits from ``out1 ^ out2``; a draw of any shape is its flat draw
    reshaped.
    """
    sizes_array = np.asarray(sizes, np.int64)
    total = int(sizes_array.sum())
    if total >= _MAX_MERGED_ELEMENTS:
        raise ValueError(f"{total} random elements are past one merged hash's int32 index")
    words = jax.random.key_data(keys)  # (draws, 2) uint32
    ends = np.cumsum(sizes_array)
    starts = ends - sizes_array
    # Which draw each element belongs to, computed on the device: a constant
    # of ``total`` indices would be megabytes of program.
    element = jax.lax.iota(jnp.int32, total)
    draw_of = jnp.searchsorted(jnp.asarray(ends, jnp.int32), element, side="right", method="scan")
    first = words[draw_of, 0]
    second = words[draw_of, 1]
    counter = (element - jnp.asarray(starts, jnp.int32)[draw_of]).astype(jnp.uint32)
    out1, out2 = jex_random.threefry2x32_p.bind(first, second, jnp.zeros_like(counter), counter)
    bits = out1 ^ out2
    return bits if width == 32 else bits.astype(_BIT_DTYPES[width])


def _bind(eqn: Any, inputs: list[Any]) -> list[Any]:
    bind_params = eqn.primitive.get_bind_params(eqn.params)
    if isinstance(bind_params, tuple):  # JAX before 0.7 returned (subfuns, params)
        subfuns, bind_params = bind_params
        inputs = [*subfuns, *inputs]
    result = eqn.primitive.bind(*inputs, **bind_params)
    return list(result) if eqn.primitive.multiple_results else [result]
