"""The compiled kernel computes what the NumPy reference computes, and builds at any size."""

import subprocess
import sys

import numpy as np
import pytest

from dtesn.engine import ReferenceReservoir, ReservoirParams, Session, build_weights

DATA = np.random.default_rng(7).integers(0, 256, 64 * 400 + 11, dtype=np.uint8).tobytes()
TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("esn_size", "depth"), [(32, 1), (256, 1), (1000, 1), (256, 4), (1024, 4), (800, 8)])
def test_kernel_equals_the_numpy_reference(dtype, esn_size, depth):
    weights = build_weights(ReservoirParams(esn_size=esn_size, membrane_depth=depth, dtype=dtype))
    compiled, reference = Session(weights), Session(weights, ReferenceReservoir)
    got, want = compiled.feed(DATA, final=True), reference.feed(DATA, final=True)
    assert got.features.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got.features, want.features, rtol=0, atol=TOLERANCE[dtype])
    np.testing.assert_allclose(compiled.state, reference.state, rtol=0, atol=TOLERANCE[dtype])
    np.testing.assert_allclose(got.energy, want.energy, rtol=0, atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_frames_and_kept_states_match_the_reference(dtype):
    params = ReservoirParams(esn_size=300, membrane_depth=2, frame_size=3, dtype=dtype)
    weights = build_weights(params)
    frames = np.random.default_rng(2).uniform(-1, 1, (500, 3))
    got = Session(weights).run(frames, keep_states=True)
    want = Session(weights, ReferenceReservoir).run(frames, keep_states=True)
    assert got.states.shape == (500, params.neurons)
    np.testing.assert_allclose(got.states, want.states, rtol=0, atol=TOLERANCE[dtype])


def test_the_largest_single_membrane_builds_and_runs():
    params = ReservoirParams(esn_size=4096, membrane_depth=1)
    weights = build_weights(params)  # no dense eigen-solve of the 4096 block (that took 42-46 s)
    assert weights.spectral_radii.shape == (1,) and weights.spectral_radii[0] > 0
    result = Session(weights).feed(DATA[:64 * 50])
    assert result.features.shape == (50, 1) and np.all(np.isfinite(result.features))


def test_every_byte_of_a_frame_reaches_the_skin_even_with_few_skin_neurons():
    weights = build_weights(ReservoirParams(esn_size=32, membrane_depth=4, frame_size=4096))
    assert weights.input_sources.shape[1] == 4
    assert set(weights.input_sources.ravel().tolist()) == set(range(4096))


@pytest.mark.parametrize(("esn_size", "depth"), [(32, 1), (1000, 1), (4096, 1), (800, 4)])
def test_every_neuron_reads_distinct_neurons_and_feeds_as_many(esn_size, depth):
    """The shifted windows keep the fan-in exact: no slot of a neuron repeats another's source;
    where a membrane's groups are of one size (800 / 8 = 100: two of 50), every neuron is read
    by exactly `connectivity` neurons, and on average where they differ by one (1000: 62 and 63)."""
    w = build_weights(ReservoirParams(esn_size=esn_size, membrane_depth=depth))
    recurrent = w.sources[: w.recurrent_fanin]
    assert all(len(set(column)) == w.recurrent_fanin for column in recurrent.T.tolist())
    assert all(len(set(column)) == len(column) for column in w.sources[w.recurrent_fanin :].T.tolist())
    assert all(len(set(column)) == len(column) for column in w.input_sources.T.tolist())
    read_by = np.bincount(recurrent.ravel(), minlength=w.neurons)
    if len(set(w.group_sizes.tolist())) == 1:
        assert np.all(read_by == w.recurrent_fanin)
    else:
        assert read_by.mean() == w.recurrent_fanin and np.all(read_by > 0)


WARMED_SIGNATURES = """
import numpy as np
from dtesn.engine import ReservoirParams, Session, build_weights, warm_up
from dtesn.engine.kernel import compiled_advance

warm_up()
warmed = len(compiled_advance().signatures)
session = Session(build_weights(ReservoirParams(esn_size=64, membrane_depth=3, frame_size=16)))
session.feed_many([b"x" * 100, b"y" * 7, memoryview(b"z" * 40)])
session.feed(b"", final=True)
session.run(np.zeros((5, 16)), keep_states=True)
session.run(np.zeros((5, 16)))
print(warmed, len(compiled_advance().signatures))
"""


def test_warm_up_compiles_every_signature_a_session_uses():
    """The server warms the kernel before traffic; a signature missed there (a read-only
    array where warm-up passed a writable one) would compile on a request, about a second.
    A fresh process: this one has compiled whatever the other tests used."""
    out = subprocess.run([sys.executable, "-c", WARMED_SIGNATURES], capture_output=True, text=True, check=True)
    warmed, used = out.stdout.split()
    assert used == warmed
