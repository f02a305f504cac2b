"""The membrane hierarchy: one membrane per rooted tree, level k holding the k-node trees.

This is the tree as data (levels, parents, sizes); the weights live in `weights.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from .trees import LevelSequence, parent_of, rooted_trees

MAX_DEPTH = 8


@cache  # asked several times per request (params.membranes); the tree enumeration is not free
def membrane_count(depth: int) -> int:
    """M(d): rooted trees with 1..d nodes (1, 2, 4, 8, 17, 37, 85, 200)."""
    return sum(len(rooted_trees(k)) for k in range(1, depth + 1))


@dataclass(frozen=True)
class MembraneTree:
    """Membranes in level order; membrane 0 is the skin, the only one that sees input."""

    depth: int
    trees: tuple[LevelSequence, ...]
    levels: np.ndarray  # level (1-based) of every membrane
    parents: np.ndarray  # index of every membrane's parent; -1 for the skin

    @property
    def count(self) -> int:
        return len(self.trees)

    def level_counts(self) -> list[int]:
        return np.bincount(self.levels, minlength=self.depth + 1)[1:].tolist()

    def describe(self, neurons_per_membrane: int) -> dict:
        """The tree as JSON-ready data, for the API's membrane_info."""
        return {
            "membrane_depth": self.depth,
            "membranes": self.count,
            "neurons_per_membrane": neurons_per_membrane,
            "level_counts": self.level_counts(),
            "membrane_list": [
                {
                    "index": i,
                    "level": int(self.levels[i]),
                    "parent": None if self.parents[i] < 0 else int(self.parents[i]),
                    "tree": list(tree),
                }
                for i, tree in enumerate(self.trees)
            ],
        }


@cache
def membrane_tree(depth: int) -> MembraneTree:
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"membrane depth must be 1..{MAX_DEPTH}")
    trees = [t for k in range(1, depth + 1) for t in rooted_trees(k)]
    index = {t: i for i, t in enumerate(trees)}
    parents = [-1] + [index[parent_of(t)] for t in trees[1:]]
    levels = np.array([len(t) for t in trees], dtype=np.intp)
    return MembraneTree(depth, tuple(trees), levels, np.array(parents, dtype=np.intp))
