"""SA3D's 3-D mask grid in closed form: per-vertex running average of the inverse-rendered votes of every accepted view.

The reference takes one SGD step (lr = 1) per view on the linear loss L = -Σ S·M + λ Σ (1-S)·M with M = A V, and keeps
a per-vertex running average over the views that changed the vertex. The gradient does not depend on V, so the result
is V = Σ_views A^T (S - λ(1-S)) / (number of views that see the vertex): two accumulators and one division.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..mesh.interior import enclosed
from .view_cache import ViewWeights


@dataclass
class ObjectVotes:
    total: np.ndarray  # float64 [X*Y*Z] Σ_views A^T (S - λ(1-S))
    count: np.ndarray  # int32 [X*Y*Z] number of accepted views that see the vertex
    support: np.ndarray  # float64 [X*Y*Z] Σ_views A^T S: where this object's SAM masks put mass (penalises the others)
    # float32 [X*Y*Z] max over the views of A^T 1: how much of the vertex the view that sees it best sees (its
    # footprint in pixels, weighted by the light that reaches it); what extraction tells hidden matter by
    seen: np.ndarray


# Object k counts as inside object j when this fraction of k's own 3-D mask lies in j's (a ball in a tray, a door of
# a car): j's SAM masks rightly cover k, so they must not be held against k, nor k's against j.
NESTED_FRACTION = 0.8


class MaskGrid:
    """One mask channel per object on the density grid's vertices (values start at 0).

    `other_object_penalty` μ is the reference's multi-object term Σ_p S_j(p)·M_k(p): object k loses μ times object j's
    splatted SAM masks, so a SAM mask that leaks onto a neighbour does not give the neighbour's voxels to k. Nested
    objects (one inside the other) do not penalise each other.
    """

    def __init__(self, shape: tuple[int, int, int], other_object_penalty: float = 1.0):
        self.shape = tuple(int(s) for s in shape)
        self.other_object_penalty = float(other_object_penalty)
        self._objects: dict[str, ObjectVotes] = {}

    @property
    def names(self) -> list[str]:
        return list(self._objects)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def reset(self, name: str) -> None:
        """Start (or restart) object `name` with no votes."""
        n = self.size
        self._objects[name] = ObjectVotes(np.zeros(n), np.zeros(n, dtype=np.int32), np.zeros(n),
                                          np.zeros(n, dtype=np.float32))

    def votes(self, name: str) -> ObjectVotes | None:
        return self._objects.get(name)

    def put_votes(self, name: str, votes: ObjectVotes | None) -> None:
        """Put back what `votes` returned (None removes the object): undoes a segmentation that failed half-way."""
        if votes is None:
            self._objects.pop(name, None)
        else:
            self._objects[name] = votes

    def add_view(self, name: str, weights: ViewWeights, sam_mask: np.ndarray, negative_weight: float) -> None:
        """Inverse-render one view's SAM mask into object `name` (λ = negative_weight for pixels outside the mask)."""
        votes = self._objects[name]
        inside = np.asarray(sam_mask, dtype=np.float64).reshape(weights.shape)
        positive, negative = weights.splat(inside), weights.splat(1.0 - inside)
        votes.total += positive - negative_weight * negative
        votes.count += weights.touched()
        votes.support += positive
        np.maximum(votes.seen, positive + negative, out=votes.seen, casting="unsafe")  # A^T S + A^T (1-S) = A^T 1

    def values(self, name: str) -> np.ndarray:
        """The mask grid V of `name`, float32 [X*Y*Z]; 0 where no accepted view sees the vertex."""
        votes = self._objects[name]
        value = votes.total / np.maximum(votes.count, 1)
        if self.other_object_penalty and len(self._objects) > 1:
            # per view, like this object's own votes: a neighbour segmented from 20 views must not outvote an object
            # that so far has 1
            others = [v.support / np.maximum(v.count, 1) for other, v in self._objects.items()
                      if other != name and not self.nested(name, other)]
            if others:
                value = value - self.other_object_penalty * sum(others)
        return value.astype(np.float32)

    def _own_mask(self, name: str) -> np.ndarray:
        """The object's 3-D mask from its own votes only (no other object's penalty)."""
        return self._objects[name].total > 0

    def inside(self, inner: str, outer: str) -> bool:
        """Whether object `inner` lies (mostly) inside object `outer`, judged on their own votes."""
        mask = self._own_mask(inner)
        size = int(mask.sum())
        return size > 0 and float((mask & self._own_mask(outer)).sum()) >= NESTED_FRACTION * size

    def containers(self, name: str) -> list[str]:
        """The objects `name` lies inside (their masks give it up: their meshes change once it is segmented)."""
        return [outer for outer in self._objects
                if outer != name and self.inside(name, outer) and not self.inside(outer, name)]

    def nested(self, a: str, b: str) -> bool:
        return self.inside(a, b) or self.inside(b, a)

    def grid(self, name: str) -> np.ndarray:
        return self.values(name).reshape(self.shape)

    def visibility(self, name: str) -> np.ndarray:
        """float32 [X,Y,Z]: how much of each vertex the accepted view that sees it best sees (ObjectVotes.seen)."""
        return self._objects[name].seen.reshape(self.shape)

    def others(self, name: str) -> np.ndarray:
        """bool [X,Y,Z]: what the objects other than `name` hold (masks()), with the unseen inside of those nested in
        `name`: a large object's inside has no votes, and the ball lying in the tray is not the tray's inside. A
        container's inside is not added: that is where `name` itself lies."""
        masks = self.masks()
        others = np.zeros(self.shape, dtype=bool)
        for other, mask in masks.items():
            if other == name:
                continue
            others |= mask
            if name in self.containers(other):
                others |= enclosed(mask)
        return others

    def masks(self, exclusive: bool = False) -> dict[str, np.ndarray]:
        """3-D masks bool [X,Y,Z] per object: V > 0, except that a container gives up what an object nested inside it
        holds (the tray does not keep the ball once the ball is an object of its own). With `exclusive`, masks do not
        overlap at all: elsewhere a vertex goes to the object with the highest V."""
        values = {name: self.values(name) for name in self._objects}
        solid = {name: v > 0 for name, v in values.items()}
        names = list(values)
        for inner in names:
            for outer in self.containers(inner):
                solid[outer] &= ~solid[inner]
        if exclusive and len(names) > 1:
            stacked = np.stack([np.where(solid[n], values[n], -np.inf) for n in names])
            winner = np.argmax(stacked, axis=0)
            solid = {n: solid[n] & (winner == k) for k, n in enumerate(names)}
        return {n: solid[n].reshape(self.shape) for n in names}
