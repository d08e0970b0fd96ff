"""The Kinect v2 skeleton that SMG records, as data and pure NumPy functions.

SMG uses the 25-joint Kinect v2 layout, the same joint order as NTU RGB+D.
Everything here is plain NumPy so that it can be used from models, data
transforms and plotting code alike; no model code lives in this module.

Conventions
-----------
* Joints are 0-based in code. The 1-based numbering of the Kinect SDK and of
  the published code appears only in ``INWARD_EDGES_1BASED``.
* An *inward* edge ``(i, j)`` points from joint ``i`` to joint ``j``, where
  ``j`` is one step closer to the centre joint (spine shoulder).
* ``edge_matrix(edges)`` puts edge ``(i, j)`` at ``A[j, i]`` (row = target
  of the arrow, column = source), which is what every published skeleton
  GCN does. The published models aggregate with ``einsum('...v,vw->...w',
  x, A)``: output joint ``w`` sums the features of joints ``v`` weighted by
  ``A[v, w]``. Each builder's docstring states the resulting direction.
* Adjacency stacks have shape ``(K, V, V)``: ``K`` subsets (partitions or
  scales), ``V`` joints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

Edge = tuple[int, int]

JOINT_NAMES: tuple[str, ...] = (
    "spine_base",
    "spine_mid",
    "neck",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hand",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_foot",
    "spine_shoulder",
    "left_hand_tip",
    "left_thumb",
    "right_hand_tip",
    "right_thumb",
)
NUM_JOINTS = len(JOINT_NAMES)

# The 24 bones of the Kinect v2 skeleton as the published NTU/SMG models list
# them (1-based, each pointing towards joint 21, the spine shoulder).
INWARD_EDGES_1BASED: tuple[Edge, ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7),
    (9, 21), (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14),
    (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8),
    (24, 25), (25, 12),
)  # fmt: skip
CENTER_JOINT = 21 - 1  # spine shoulder, 0-based


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """A skeleton layout: joint names, inward bones and the centre joint.

    Every adjacency builder takes a ``Skeleton`` so that the same models run
    on other layouts (OpenPose, COCO, a user's own capture system).

    Attributes:
      name: short identifier, e.g. ``"kinect_v2"``.
      joint_names: ``V`` names in joint order.
      inward_edges: 0-based ``(child, parent)`` pairs; the parent is one hop
        closer to ``center``. A tree has ``V - 1`` of them.
      center: 0-based index of the centre joint.
    """

    name: str
    joint_names: tuple[str, ...]
    inward_edges: tuple[Edge, ...]
    center: int

    def __post_init__(self) -> None:
        num = len(self.joint_names)
        if not 0 <= self.center < num:
            raise ValueError(f"Skeleton {self.name!r}: center {self.center} not in [0, {num}).")
        for i, j in self.inward_edges:
            if not (0 <= i < num and 0 <= j < num) or i == j:
                raise ValueError(
                    f"Skeleton {self.name!r}: edge ({i}, {j}) must join two different joints "
                    f"in [0, {num})."
                )

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def outward_edges(self) -> tuple[Edge, ...]:
        """The inward edges reversed: ``(parent, child)``."""
        return tuple((j, i) for i, j in self.inward_edges)

    @property
    def self_links(self) -> tuple[Edge, ...]:
        return tuple((i, i) for i in range(self.num_joints))

    @property
    def neighbor_edges(self) -> tuple[Edge, ...]:
        """Inward then outward edges: both directions of every bone."""
        return self.inward_edges + self.outward_edges

    @property
    def bone_pairs(self) -> tuple[Edge, ...]:
        """``(joint, parent)`` pairs for the bone stream, one per joint.

        The inward edges plus the centre joint paired with itself, so the
        bone stream has as many "joints" as the joint stream and the centre's
        bone is zero (as in the published bone-stream data scripts).
        """
        return (*self.inward_edges, (self.center, self.center))


KINECT_V2 = Skeleton(
    name="kinect_v2",
    joint_names=JOINT_NAMES,
    inward_edges=tuple((i - 1, j - 1) for i, j in INWARD_EDGES_1BASED),
    center=CENTER_JOINT,
)
INWARD_EDGES: tuple[Edge, ...] = KINECT_V2.inward_edges
OUTWARD_EDGES: tuple[Edge, ...] = KINECT_V2.outward_edges
BONE_PAIRS: tuple[Edge, ...] = KINECT_V2.bone_pairs

_SKELETONS = {KINECT_V2.name: KINECT_V2}


def get_skeleton(name: str) -> Skeleton:
    """Looks a layout up by name; ``"kinect_v2"`` (alias ``"ntu"``) is SMG's."""
    key = "kinect_v2" if name in ("ntu", "ntu-rgb+d", "smg") else name
    if key not in _SKELETONS:
        raise KeyError(f"Unknown skeleton layout {name!r}; known: {sorted(_SKELETONS)}.")
    return _SKELETONS[key]


# ---------------------------------------------------------------------------
# Elementary matrices.
# ---------------------------------------------------------------------------


def edge_matrix(edges: Sequence[Edge], num_joints: int) -> np.ndarray:
    """``(V, V)`` float64 matrix with ``A[j, i] = 1`` for each edge ``(i, j)``."""
    matrix = np.zeros((num_joints, num_joints))
    for i, j in edges:
        matrix[j, i] = 1.0
    return matrix


def symmetric_edge_matrix(edges: Sequence[Edge], num_joints: int) -> np.ndarray:
    """``(V, V)`` binary matrix with both ``A[i, j]`` and ``A[j, i]`` set per edge."""
    matrix = edge_matrix(edges, num_joints)
    return np.maximum(matrix, matrix.T)


def normalize_columns(matrix: np.ndarray) -> np.ndarray:
    """Divides each column by its sum (``A D^-1``); all-zero columns stay zero.

    This is the "digraph" normalisation of ST-GCN and 2s-AGCN: with the
    ``x @ A`` aggregation it averages over each output joint's neighbours.
    """
    col_sums = matrix.sum(axis=0)
    scale = np.divide(1.0, col_sums, out=np.zeros_like(col_sums, dtype=float), where=col_sums > 0)
    return matrix * scale[None, :]


def normalize_symmetric(matrix: np.ndarray) -> np.ndarray:
    """``D^-1/2 A D^-1/2`` with ``D`` the row sums, as float32 (MS-G3D's normalisation).

    Rows with zero degree are not allowed (they would divide by zero); every
    MS-G3D scale includes self-loops so this never happens there.
    """
    degrees = matrix.sum(axis=-1)
    if np.any(degrees <= 0):
        raise ValueError(
            "normalize_symmetric: every joint needs a positive degree (add self-loops)."
        )
    inv_sqrt = degrees**-0.5
    return (inv_sqrt[:, None] * matrix * inv_sqrt[None, :]).astype(np.float32)


def hop_distance(skeleton: Skeleton, max_hop: int | None = None) -> np.ndarray:
    """``(V, V)`` number of bones on the path between two joints.

    Args:
      skeleton: the layout.
      max_hop: distances above it are ``inf``; ``None`` computes them all.
        ST-GCN computes its hop table with ``max_hop=1`` and then uses that
        truncated table to decide the spatial partition (see
        ``stgcn_adjacency``), so the truncation matters for faithfulness.

    Returns:
      float64 array, symmetric, 0 on the diagonal, ``inf`` beyond ``max_hop``
      or between disconnected joints.
    """
    num = skeleton.num_joints
    reach = symmetric_edge_matrix(skeleton.inward_edges, num) + np.eye(num)
    limit = num - 1 if max_hop is None else max_hop
    distance = np.full((num, num), np.inf)
    distance[np.eye(num, dtype=bool)] = 0.0
    reached = np.eye(num, dtype=bool)
    power = np.eye(num)
    for hops in range(1, limit + 1):
        power = np.minimum(power @ reach, 1.0)
        newly = (power > 0) & ~reached
        if not newly.any():
            break
        distance[newly] = hops
        reached |= newly
    return distance


def diameter(skeleton: Skeleton) -> int:
    """The largest hop distance between two joints (12 for Kinect v2)."""
    distance = hop_distance(skeleton)
    if np.isinf(distance).any():
        raise ValueError(f"Skeleton {skeleton.name!r} is not connected.")
    return int(distance.max())


# ---------------------------------------------------------------------------
# ST-GCN (Yan et al., AAAI 2018; yysijie/st-gcn net/utils/graph.py).
# ---------------------------------------------------------------------------

STGCN_STRATEGIES = ("uniform", "distance", "spatial")


def stgcn_adjacency(
    skeleton: Skeleton = KINECT_V2,
    strategy: str = "spatial",
    max_hop: int = 1,
    dilation: int = 1,
    center_hops: str = "truncated",
) -> np.ndarray:
    """ST-GCN's partitioned adjacency, ``(K, V, V)`` float32.

    Used by ST-GCN. All joints within ``max_hop`` (self included) form one
    neighbourhood, normalised once by column sums *before* it is split, so
    the ``K`` subsets of the spatial strategy add up to a matrix with unit
    column sums. Aggregation is ``x @ A[k]``: output joint ``w`` averages
    its neighbours ``v`` (weights ``A[k, v, w]``).

    Strategies (``K`` for ``max_hop=1``):
      * ``uniform`` (1): the whole neighbourhood.
      * ``distance`` (2): one subset per hop distance (0 = the joint itself).
      * ``spatial`` (3): the root itself; the neighbours as far from the
        centre as the root or farther; the neighbours closer to the centre
        than the root (the published code's ``a_root``, ``a_root + a_close``
        and ``a_further``, in that order).

    Args:
      skeleton: the layout.
      strategy: one of ``STGCN_STRATEGIES``.
      max_hop: neighbourhood radius in bones.
      dilation: keep every ``dilation``-th hop.
      center_hops: ``"truncated"`` (default, faithful to the published code)
        compares distances to the centre taken from the hop table cut at
        ``max_hop``: joints more than ``max_hop`` bones from the centre all
        read ``inf``, so their neighbours count as "same distance" and land
        in the root subset. ``"exact"`` uses true distances, the partition
        the paper describes; offered for ablations.
    """
    if strategy not in STGCN_STRATEGIES:
        raise ValueError(f"Unknown ST-GCN strategy {strategy!r}; choose from {STGCN_STRATEGIES}.")
    if center_hops not in ("truncated", "exact"):
        raise ValueError(f"center_hops must be 'truncated' or 'exact', got {center_hops!r}.")
    hops = hop_distance(skeleton, max_hop=max_hop)
    valid_hops = list(range(0, max_hop + 1, dilation))
    neighbourhood = np.isin(hops, valid_hops).astype(float)
    normalized = normalize_columns(neighbourhood)

    if strategy == "uniform":
        subsets = [normalized]
    elif strategy == "distance":
        subsets = [np.where(hops == hop, normalized, 0.0) for hop in valid_hops]
    else:
        center_table = hops if center_hops == "truncated" else hop_distance(skeleton)
        to_center = center_table[:, skeleton.center]
        # Entry [j, i]: j is the neighbour (source), i the root (output joint).
        source_dist = to_center[:, None]
        root_dist = to_center[None, :]
        subsets = []
        for hop in valid_hops:
            in_hop = hops == hop
            same = np.where(in_hop & (source_dist == root_dist), normalized, 0.0)
            source_farther = np.where(in_hop & (source_dist > root_dist), normalized, 0.0)
            source_closer = np.where(in_hop & (source_dist < root_dist), normalized, 0.0)
            if hop == 0:
                subsets.append(same)
            else:
                subsets.extend([same + source_farther, source_closer])
    return np.stack(subsets).astype(np.float32)


# ---------------------------------------------------------------------------
# The identity / inward / outward subsets (2s-AGCN, Shift-GCN, GCN-NAS, CTR-GCN).
# ---------------------------------------------------------------------------


def spatial_subsets(skeleton: Skeleton = KINECT_V2) -> np.ndarray:
    """``(3, V, V)`` float32: identity, inward and outward, each column-normalised.

    Used by 2s-AGCN, GCN-NAS, Shift-GCN (which only keeps its shape) and
    CTR-GCN (``graph/tools.get_spatial_graph`` in their repositories).
    Aggregation is ``x @ A[k]``. With ``edge_matrix``'s convention, subset 1
    (``inward``) has ``A[parent, child] = 1``: each joint receives from the
    joint one hop closer to the centre, averaged over how many it has;
    subset 2 (``outward``) sends the other way, each joint averaging over its
    children. Column normalisation happens per subset, unlike ST-GCN.
    """
    num = skeleton.num_joints
    identity = edge_matrix(skeleton.self_links, num)
    inward = normalize_columns(edge_matrix(skeleton.inward_edges, num))
    outward = normalize_columns(edge_matrix(skeleton.outward_edges, num))
    return np.stack([identity, inward, outward]).astype(np.float32)


# ---------------------------------------------------------------------------
# MS-G3D (Liu et al., CVPR 2020; kenziyuliu/MS-G3D graph/tools.py).
# ---------------------------------------------------------------------------


def binary_adjacency(skeleton: Skeleton = KINECT_V2) -> np.ndarray:
    """``(V, V)`` float32 symmetric 0/1 bone matrix without self-loops (MS-G3D's ``A_binary``)."""
    return symmetric_edge_matrix(skeleton.inward_edges, skeleton.num_joints).astype(np.float32)


def k_hop_adjacency(binary: np.ndarray, k: int, with_self: bool = True) -> np.ndarray:
    """Exactly-``k``-hop adjacency of a binary graph, ``(V, V)``.

    ``k = 0`` is the identity (and stays so with ``with_self``); for ``k >= 1``
    the entries whose shortest path is exactly ``k`` edges, plus the identity
    when ``with_self``. This is MS-G3D's disentangled aggregation.
    """
    num = len(binary)
    eye = np.eye(num, dtype=binary.dtype)
    if k == 0:
        return eye
    with_loops = binary + eye
    within_k = np.minimum(np.linalg.matrix_power(with_loops, k), 1)
    within_k_minus_1 = np.minimum(np.linalg.matrix_power(with_loops, k - 1), 1)
    exact = within_k - within_k_minus_1
    return exact + eye if with_self else exact


def msg3d_scales(binary: np.ndarray, num_scales: int, disentangled: bool = True) -> np.ndarray:
    """MS-G3D's multi-scale graph, ``(num_scales * V, V)`` float32, scales stacked on rows.

    Used by MS-G3D's ``MultiScale_GraphConv`` (spatial, with ``binary`` the
    ``V``-joint bone matrix) and ``SpatialTemporal_MS_GCN`` (with ``binary``
    the ``tau V``-node window graph of ``spatio_temporal_window``).
    Aggregation is ``einsum('vu,nctu->nctv', A, x)``: row ``v`` gathers from
    columns ``u``; each scale is symmetric so the direction does not matter.

    Args:
      binary: ``(V, V)`` 0/1 adjacency.
      num_scales: number of scales ``K``; scale ``k`` links joints exactly
        ``k`` hops apart (plus self-loops), normalised ``D^-1/2 A D^-1/2``.
      disentangled: ``False`` gives the ablation the paper argues against:
        powers of the normalised 1-hop graph (with self-loops), which bias
        towards close joints.
    """
    if disentangled:
        scales = [normalize_symmetric(k_hop_adjacency(binary, k)) for k in range(num_scales)]
    else:
        one_hop = normalize_symmetric(binary + np.eye(len(binary), dtype=binary.dtype))
        scales = [np.linalg.matrix_power(one_hop, k) for k in range(num_scales)]
    return np.concatenate(scales).astype(np.float32)


def spatio_temporal_window(binary: np.ndarray, window_size: int) -> np.ndarray:
    """MS-G3D's window graph: ``(tau V, tau V)`` tiling of ``binary + I``.

    Every joint in every frame of a ``tau``-frame window connects to its
    neighbours and itself in all ``tau`` frames (``np.tile`` order: node
    ``t * V + v``). Used by MS-G3D's G3D pathway together with
    ``msg3d_scales``.
    """
    with_loops = binary + np.eye(len(binary), dtype=binary.dtype)
    return np.tile(with_loops, (window_size, window_size)).astype(np.float32)
