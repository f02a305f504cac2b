"""Rooted trees as canonical level sequences, in Beyer–Hedetniemi order.

A DTESN's membrane hierarchy is shaped by the rooted trees counted by OEIS A000081.
A level sequence lists each node's depth (root = 1) in pre-order; the canonical one is
the lexicographically largest among a tree's orderings, which is exactly what the
Beyer–Hedetniemi successor rule (1980) visits, from the path down to the star.
"""

from __future__ import annotations

from functools import cache

LevelSequence = tuple[int, ...]


@cache
def rooted_trees(nodes: int) -> tuple[LevelSequence, ...]:
    """All rooted trees with `nodes` nodes, in Beyer–Hedetniemi (decreasing) order."""
    if nodes < 1:
        raise ValueError("a rooted tree has at least one node")
    levels = list(range(1, nodes + 1))
    found = [tuple(levels)]
    while True:
        p = _last_index_above_two(levels)
        if p is None:
            return tuple(found)
        q = max(i for i in range(p) if levels[i] == levels[p] - 1)
        shift = p - q
        for i in range(p, nodes):
            levels[i] = levels[i - shift]
        found.append(tuple(levels))


def _last_index_above_two(levels: list[int]) -> int | None:
    for i in range(len(levels) - 1, -1, -1):
        if levels[i] > 2:
            return i
    return None


def canonical(levels: LevelSequence) -> LevelSequence:
    """The canonical (lexicographically largest) level sequence of the same tree."""

    def subtree(start: int) -> tuple[LevelSequence, int]:
        depth = levels[start]
        children: list[LevelSequence] = []
        i = start + 1
        while i < len(levels) and levels[i] > depth:
            child, i = subtree(i)
            children.append(child)
        children.sort(reverse=True)
        return (depth,) + tuple(x for child in children for x in child), i

    return subtree(0)[0]


def parent_of(levels: LevelSequence) -> LevelSequence:
    """The tree one node smaller: the canonical sequence without its last node."""
    if len(levels) < 2:
        raise ValueError("the one-node tree has no parent")
    return levels[:-1]
