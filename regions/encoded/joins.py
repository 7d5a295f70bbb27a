"""Joining faces of the encoded 2D engine that are one region.

Two reasons to join faces, one mechanism (:func:`union_groups`):

* tiles (:mod:`regions.encoded.tiles`): a face cut by a tile edge is one face
  of the whole partition, so the tile faces of one pattern that share a stretch
  of a tile edge are joined;
* a max over ``k > 2`` values (:attr:`regions.Network.max_trees`,
  :func:`join_max_faces`): the engine cuts along every comparison of the max's
  tree, but a comparison between two losers is no region boundary (the output
  map is the winner's whichever loser is larger). Faces whose canonical patterns
  agree (:meth:`regions.Network.canonical`: the comparisons off the winner's
  path read 0) and that share a boundary arc are one region, as in the raw
  engines (:func:`regions._shared.merge_max_runs` along a line, the raw 2D
  engine's ``merge_pieces``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["union_groups", "join_max_faces"]


def union_groups(geoms, labels):
    """The union of the faces of each label: ``(faces, first)``, ``first`` the index
    of the group's first face (its pattern and output map are the group's).

    Raises ``RuntimeError`` if a group's union is not one polygon: the faces of a
    group are joined along shared arcs, so that would be a bug, never a result."""
    import shapely

    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1]]) \
        if len(order) else np.zeros(0, dtype=np.int64)
    size = np.diff(np.r_[starts, len(order)])
    arr = np.asarray(geoms, dtype=object)
    first = order[starts].astype(np.int64)
    faces = arr[first]                  # a group of one face is that face
    for g in np.flatnonzero(size > 1).tolist():
        faces[g] = shapely.union_all(arr[order[starts[g]:starts[g] + size[g]]])
    faces = faces.tolist()
    bad = np.flatnonzero(shapely.get_type_id(np.asarray(faces, dtype=object)) != 3) \
        if faces else []
    if len(bad):
        raise RuntimeError(f"joining faces gave {len(bad)} faces that are not one polygon (the "
                           f"first near {shapely.get_coordinates(faces[bad[0]])[0].tolist()}); "
                           "please report it with the network")
    return faces, first


def join_max_faces(network, geoms, bits, A, c, tol, stats):
    """Faces of a network with a max over ``k > 2`` values joined where only the
    max's losers change order: ``(geoms, bits, A, c)`` with canonical ``bits``.

    Two faces are joined when their canonical patterns are equal and their
    boundaries share a stretch longer than ``4 tol`` (a shorter contact is where
    two curves cross, as in :attr:`EncodedPartition2D.adjacent_pairs`); the joined
    face's output map is any member's (the same map: one winner, the same other
    bits). ``stats["faces_before_max_merge"]`` records the engine's count. A
    network without :attr:`regions.Network.max_trees` is returned unchanged.
    """
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if network.max_trees is None:
        return geoms, bits, A, c
    stats["faces_before_max_merge"] = len(geoms)
    canon = network.canonical(bits)
    n = len(geoms)
    if n < 2:
        return geoms, canon, A, c
    arr = np.asarray(geoms, dtype=object)
    a, b = shapely.STRtree(arr).query(arr, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    keep = (canon[a] == canon[b]).all(axis=1)
    a, b = a[keep], b[keep]
    shared = shapely.length(shapely.intersection(shapely.boundary(arr[a]),
                                                 shapely.boundary(arr[b])))
    join = shared > 4 * tol
    graph = coo_matrix((np.ones(int(join.sum())), (a[join], b[join])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    faces, first = union_groups(geoms, labels)
    return faces, canon[first], A[first], c[first]
