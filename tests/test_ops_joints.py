"""Products over joints: matmul-order fast paths against their einsums."""

from __future__ import annotations

import pytest
from ops_contract import check_fast_equals_reference, rand

from smg_jax.models.ops import joints


def test_rows_matmul_equals_the_reference():
    check_fast_equals_reference(joints.rows_matmul, [rand(2, 5, 7, 4), rand(4, 3, seed=1)])


@pytest.mark.parametrize("per_clip", [False, True])
def test_aggregate_joints_equals_the_reference(per_clip):
    adjacency = rand(3, 5, 6) if per_clip else rand(5, 6)
    check_fast_equals_reference(joints.aggregate_joints, [adjacency, rand(3, 5, 8, seed=1)])


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("per_clip", [False, True])
@pytest.mark.parametrize(("c_in", "c_out"), [(3, 8), (8, 3)])
def test_graph_project_equals_the_reference(bias, per_clip, c_in, c_out):
    adjacency = rand(2, 3, 5, 5) if per_clip else rand(3, 5, 5)
    args = [rand(2, 5, 4, c_in), adjacency, rand(3, c_in, c_out, seed=1)]
    if bias:
        args.append(rand(3, c_out, seed=2))
    check_fast_equals_reference(joints.graph_project, args)


def test_embedding_scores_equal_the_reference():
    theta, phi = rand(2, 5, 4, 3, 6), rand(2, 5, 4, 3, 6, seed=1)
    check_fast_equals_reference(joints.embedding_scores, [theta, phi])
