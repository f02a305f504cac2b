import numpy as np
import pytest

from dtesn.engine import membrane_count, membrane_tree
from dtesn.engine.trees import canonical, parent_of, rooted_trees

A000081 = [1, 1, 2, 4, 9, 20, 48, 115]


@pytest.mark.parametrize("k", range(1, 9))
def test_rooted_tree_counts_follow_a000081(k):
    trees = rooted_trees(k)
    assert len(trees) == A000081[k - 1]
    assert len(set(trees)) == len(trees)
    assert all(canonical(t) == t for t in trees), "Beyer–Hedetniemi visits canonical sequences"
    assert list(trees) == sorted(trees, reverse=True), "in Beyer–Hedetniemi (decreasing) order"


def test_canonical_orders_children_largest_first():
    assert canonical((1, 2, 2, 3)) == (1, 2, 3, 2)


@pytest.mark.parametrize("depth", range(1, 9))
def test_membrane_tree_levels_and_parent_rule(depth):
    tree = membrane_tree(depth)
    assert tree.count == membrane_count(depth) == sum(A000081[:depth])
    assert tree.level_counts() == A000081[:depth]
    assert tree.parents[0] == -1 and tree.levels[0] == 1
    for i in range(1, tree.count):
        parent = tree.parents[i]
        assert tree.trees[parent] == parent_of(tree.trees[i])
        assert tree.levels[parent] == tree.levels[i] - 1
    assert np.all(np.diff(tree.levels) >= 0), "membranes are stored level by level"


def test_membrane_counts():
    assert [membrane_count(d) for d in range(1, 9)] == [1, 2, 4, 8, 17, 37, 85, 200]


def test_describe_is_json_ready():
    info = membrane_tree(3).describe(neurons_per_membrane=16)
    assert info["level_counts"] == [1, 1, 2]
    assert info["membrane_list"][3] == {"index": 3, "level": 3, "parent": 1, "tree": [1, 2, 2]}
