"""Facts about the Kinect v2 skeleton and the published adjacency builders."""

from __future__ import annotations

import numpy as np
import pytest

from smg_jax import graph

J = {name: index for index, name in enumerate(graph.JOINT_NAMES)}


def test_joint_order_matches_kinect_v2():
    # 1-based numbering from the Kinect SDK / NTU RGB+D documentation.
    expected_1based = {
        1: "spine_base", 2: "spine_mid", 3: "neck", 4: "head", 5: "left_shoulder",
        8: "left_hand", 12: "right_hand", 13: "left_hip", 16: "left_foot",
        20: "right_foot", 21: "spine_shoulder", 22: "left_hand_tip", 23: "left_thumb",
        24: "right_hand_tip", 25: "right_thumb",
    }  # fmt: skip
    assert graph.NUM_JOINTS == 25
    for number, name in expected_1based.items():
        assert graph.JOINT_NAMES[number - 1] == name
    assert J["spine_shoulder"] == graph.CENTER_JOINT


def test_edges_form_a_tree_pointing_to_the_center():
    edges = graph.INWARD_EDGES
    assert len(edges) == 24
    children = [child for child, _ in edges]
    # Every joint but the centre has exactly one parent.
    assert sorted(children) == sorted(set(range(25)) - {graph.CENTER_JOINT})
    distance = graph.hop_distance(graph.KINECT_V2)[:, graph.CENTER_JOINT]
    for child, parent in edges:
        assert distance[parent] == distance[child] - 1, (child, parent)


def test_bone_pairs_are_edges_plus_center_self_pair():
    assert graph.BONE_PAIRS[:-1] == graph.INWARD_EDGES
    assert graph.BONE_PAIRS[-1] == (20, 20)
    assert sorted(j for j, _ in graph.BONE_PAIRS) == list(range(25))


@pytest.mark.parametrize(
    ("joints", "hops"),
    [
        (("spine_mid", "neck", "left_shoulder", "right_shoulder"), 1),
        (("left_foot", "right_foot", "left_hand_tip", "right_hand_tip"), 6),
        (("head", "spine_base"), 2),
        (("left_thumb", "right_thumb", "left_ankle"), 5),
    ],
)
def test_hop_distances_to_center(joints, hops):
    distance = graph.hop_distance(graph.KINECT_V2)
    for name in joints:
        assert distance[J[name], graph.CENTER_JOINT] == hops, name


def test_diameter_is_twelve_hops_between_a_hand_tip_and_a_foot():
    assert graph.diameter(graph.KINECT_V2) == 12
    distance = graph.hop_distance(graph.KINECT_V2)
    assert distance[J["left_hand_tip"], J["right_foot"]] == 12
    assert np.array_equal(distance, distance.T)


def test_truncated_hop_table_is_inf_beyond_max_hop():
    distance = graph.hop_distance(graph.KINECT_V2, max_hop=1)
    assert distance[J["head"], J["neck"]] == 1
    assert np.isinf(distance[J["head"], J["spine_shoulder"]])
    assert set(np.unique(distance)) == {0.0, 1.0, np.inf}


@pytest.mark.parametrize("strategy", graph.STGCN_STRATEGIES)
@pytest.mark.parametrize("max_hop", [1, 2])
def test_stgcn_subsets_sum_to_unit_column_sums(strategy, max_hop):
    adjacency = graph.stgcn_adjacency(strategy=strategy, max_hop=max_hop)
    np.testing.assert_allclose(adjacency.sum(axis=(0, 1)), np.ones(25), atol=1e-6)
    total = adjacency.sum(axis=0)
    # The union is the (max_hop)-neighbourhood, normalised once before the split.
    within = graph.hop_distance(graph.KINECT_V2) <= max_hop
    assert np.array_equal(total > 0, within)


def test_stgcn_partition_sizes():
    assert graph.stgcn_adjacency(strategy="uniform").shape == (1, 25, 25)
    assert graph.stgcn_adjacency(strategy="distance").shape == (2, 25, 25)
    assert graph.stgcn_adjacency(strategy="spatial").shape == (3, 25, 25)
    assert graph.stgcn_adjacency(strategy="spatial", max_hop=2).shape == (5, 25, 25)


def test_stgcn_spatial_partition_near_the_center():
    """Column = root joint. For the neck (1 hop from the centre) the spine shoulder
    is closer to the centre and the head farther; the root itself is subset 0."""
    root, same_or_farther, closer = graph.stgcn_adjacency(strategy="spatial")
    neck, head, center = J["neck"], J["head"], graph.CENTER_JOINT
    degree = 3  # neck: itself, head, spine shoulder
    assert root[neck, neck] == pytest.approx(1 / degree)
    assert same_or_farther[head, neck] == pytest.approx(1 / degree)
    assert closer[center, neck] == pytest.approx(1 / degree)
    assert np.allclose(
        np.diag(root), 1 / (graph.symmetric_edge_matrix(graph.INWARD_EDGES, 25).sum(0) + 1)
    )


def test_stgcn_truncated_partition_puts_far_joints_in_the_root_subset():
    """The published code compares centre distances from the hop table cut at
    max_hop, so for joints two or more bones from the centre both distances read
    inf and the neighbour counts as 'same distance' (subset 1, never subset 2)."""
    _, same_or_farther, closer = graph.stgcn_adjacency(strategy="spatial")
    elbow, wrist = J["left_elbow"], J["left_wrist"]
    assert closer[elbow, wrist] == 0.0
    assert same_or_farther[elbow, wrist] > 0.0
    _, exact_far, exact_closer = graph.stgcn_adjacency(strategy="spatial", center_hops="exact")
    assert exact_closer[elbow, wrist] > 0.0
    assert exact_far[elbow, wrist] == 0.0


def test_spatial_subsets_identity_inward_outward():
    identity, inward, outward = graph.spatial_subsets()
    assert np.array_equal(identity, np.eye(25))
    # Inward: A[parent, child]; every non-centre column has one parent.
    assert inward[J["neck"], J["head"]] == 1.0
    np.testing.assert_allclose(inward.sum(0), [0.0 if v == 20 else 1.0 for v in range(25)])
    # Outward: A[child, parent], averaged over the parent's children (spine shoulder has 4).
    assert outward[J["neck"], graph.CENTER_JOINT] == pytest.approx(1 / 4)
    np.testing.assert_allclose(outward.T, np.where(outward.T > 0, outward.T, 0))
    leaves = [v for v in range(25) if outward[:, v].sum() == 0]
    assert J["head"] in leaves and J["left_foot"] in leaves


def test_binary_adjacency_is_symmetric_without_self_loops():
    binary = graph.binary_adjacency()
    assert np.array_equal(binary, binary.T)
    assert binary.sum() == 48 and np.trace(binary) == 0


@pytest.mark.parametrize("k", range(0, 13))
def test_msg3d_scale_k_holds_exactly_the_joints_k_hops_away(k):
    binary = graph.binary_adjacency()
    distance = graph.hop_distance(graph.KINECT_V2)
    scales = graph.msg3d_scales(binary, num_scales=13).reshape(13, 25, 25)
    scale = scales[k]
    off_diagonal = ~np.eye(25, dtype=bool)
    assert np.array_equal(scale[off_diagonal] > 0, (distance == k)[off_diagonal])
    assert np.all(np.diag(scale) > 0)
    np.testing.assert_allclose(scale, scale.T, atol=1e-7)


def test_msg3d_normalization_is_symmetric_degree_normalization():
    binary = graph.binary_adjacency()
    scale1 = graph.msg3d_scales(binary, num_scales=2)[25:]
    with_self = binary + np.eye(25)
    degree = with_self.sum(1)
    expected = with_self / np.sqrt(np.outer(degree, degree))
    np.testing.assert_allclose(scale1, expected, rtol=1e-6)


def test_msg3d_entangled_powers_mix_scales():
    binary = graph.binary_adjacency()
    powers = graph.msg3d_scales(binary, num_scales=3, disentangled=False).reshape(3, 25, 25)
    np.testing.assert_allclose(powers[0], np.eye(25))
    # Powers of the 1-hop graph reach 1-hop joints again at k = 2 (the bias MS-G3D removes).
    assert powers[2][J["neck"], J["head"]] > 0


def test_spatio_temporal_window_tiles_graph_with_self_loops():
    binary = graph.binary_adjacency()
    window = graph.spatio_temporal_window(binary, window_size=3)
    assert window.shape == (75, 75)
    # Joint v in frame t is node t*V + v; a neighbour in another frame is linked.
    neck, head = J["neck"], J["head"]
    assert window[0 * 25 + neck, 2 * 25 + head] == 1.0
    assert window[1 * 25 + neck, 0 * 25 + neck] == 1.0
    assert window[0 * 25 + neck, 1 * 25 + J["left_foot"]] == 0.0
    scales = graph.msg3d_scales(window, num_scales=2).reshape(2, 75, 75)
    np.testing.assert_allclose(scales[0], np.eye(75))


def test_skeleton_validation_and_lookup():
    with pytest.raises(ValueError, match="center"):
        graph.Skeleton("bad", ("a", "b"), ((0, 1),), center=5)
    with pytest.raises(ValueError, match="edge"):
        graph.Skeleton("bad", ("a", "b"), ((0, 7),), center=1)
    assert graph.get_skeleton("ntu") is graph.KINECT_V2
    with pytest.raises(KeyError, match="kinect_v2"):
        graph.get_skeleton("openpose25")


def test_builders_work_on_another_layout():
    chain = graph.Skeleton("chain", ("a", "b", "c", "d"), ((0, 1), (1, 2), (3, 2)), center=2)
    assert graph.diameter(chain) == 3
    adjacency = graph.stgcn_adjacency(chain, strategy="spatial")
    np.testing.assert_allclose(adjacency.sum(axis=(0, 1)), np.ones(4), atol=1e-6)
    assert graph.spatial_subsets(chain).shape == (3, 4, 4)
    assert chain.bone_pairs == ((0, 1), (1, 2), (3, 2), (2, 2))
