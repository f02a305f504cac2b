"""The engine is a real echo state network: tested as one, not claimed."""

import os
import subprocess
import sys

import numpy as np
import pytest

from dtesn.engine import ParameterError, ReservoirParams, Snapshot, WeightCache, build_weights, session

RNG = np.random.default_rng(1234)
BYTES = RNG.integers(0, 256, 64 * 300 + 37, dtype=np.uint8).tobytes()


def feed_in_pieces(params, data, cuts):
    s = session(params)
    pieces, start = [], 0
    for cut in [*cuts, len(data)]:
        pieces.append(s.feed(data[start:cut]).features)
        start = cut
    pieces.append(s.finish().features)
    return np.concatenate(pieces), s


@pytest.mark.parametrize("depth", range(1, 9))
def test_every_recurrent_block_has_the_requested_spectral_radius(depth):
    params = ReservoirParams(membrane_depth=depth, esn_size=800, dtype="float64", spectral_radius=0.83)
    blocks = build_weights(params).recurrent_blocks()
    radii = np.abs(np.linalg.eigvals(blocks)).max(axis=1)
    np.testing.assert_allclose(radii, 0.83, rtol=0, atol=1e-9)


def test_coupling_flows_only_from_parent_to_child():
    w = build_weights(ReservoirParams(membrane_depth=4, esn_size=128))
    n = w.params.neurons_per_membrane
    membrane_of_slot = np.repeat(np.arange(w.tree.count), n)
    recurrent = w.sources[: w.recurrent_fanin] // n
    coupled = w.sources[w.recurrent_fanin :] // n
    assert np.all(recurrent == membrane_of_slot)
    parent = w.tree.parents[membrane_of_slot]
    assert np.all((coupled == parent) | ((parent < 0) & (w.values[w.recurrent_fanin :] == 0)))


def test_input_reaches_the_skin_only_and_leak_slows_with_depth():
    params = ReservoirParams(membrane_depth=3, esn_size=64, leak_rate=0.6, leak_decay=0.5)
    w = build_weights(params)
    assert w.input_matrix().shape == (params.neurons_per_membrane, params.frame_size)
    n = params.neurons_per_membrane
    np.testing.assert_allclose(np.unique(w.leak), sorted({0.6, 0.3, 0.15}), rtol=1e-6)
    assert np.all(w.leak[:n] == np.float32(0.6))


def test_echo_state_property_forgets_the_initial_state():
    params = ReservoirParams(membrane_depth=3, esn_size=256, dtype="float64")
    a, b = session(params), session(params)
    for s, seed in ((a, 1), (b, 2)):
        start = np.random.default_rng(seed).uniform(-1, 1, params.neurons)
        s.restore(Snapshot(state=start, steps=0, pending=b""))
    assert np.linalg.norm(a.state - b.state) > 1
    data = np.random.default_rng(3).integers(0, 256, 64 * 1000, dtype=np.uint8).tobytes()
    a.feed(data)
    b.feed(data)
    assert np.linalg.norm(a.state - b.state) < 1e-6


def test_same_digest_in_separate_processes_with_different_hash_seeds():
    code = (
        "from dtesn.engine import ReservoirParams, session;"
        "s = session(ReservoirParams(membrane_depth=5, esn_size=512, seed=7));"
        "s.feed(bytes(range(256)) * 40); print(s.finish().digest)"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1 and len(digests.pop()) == 16


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_features_do_not_depend_on_how_input_is_split(dtype):
    params = ReservoirParams(membrane_depth=4, esn_size=256, dtype=dtype)
    whole, s_whole = feed_in_pieces(params, BYTES, [])
    for cuts in ([1000], [1, 63, 64, 65, 6000], list(range(777, len(BYTES), 777)), [10, 11, 12, 19000]):
        pieces, s = feed_in_pieces(params, BYTES, cuts)
        assert pieces.tobytes() == whole.tobytes()
        assert s.digest() == s_whole.digest()
    assert len(whole) == -(-len(BYTES) // 64), "the last partial frame is zero-padded, not dropped"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_pieces_energy_and_digest_do_not_depend_on_how_pieces_are_batched(dtype):
    """A stream's batches vary with the measured rate: a chunk's result must not."""
    params = ReservoirParams(membrane_depth=3, esn_size=256, dtype=dtype)
    chunks = [BYTES[i : i + 1000] for i in range(0, 20_000, 1000)]
    pieces = [*chunks[:7], b"ab", *chunks[7:], b"c"]  # "ab" and "c" complete no frame
    one_by_one = session(params)
    alone = [one_by_one.feed(piece) for piece in pieces]
    batched = session(params)
    # The second call starts with a piece that completes no frame: it keeps the state before it.
    together = batched.feed_many(pieces[:7]) + batched.feed_many(pieces[7:9]) + batched.feed_many(pieces[9:])
    assert [(r.energy, r.digest) for r in together] == [(r.energy, r.digest) for r in alone]
    assert alone[7].energy == alone[6].energy and alone[7].steps == 0
    assert alone[-1].energy == alone[-2].energy and alone[-1].steps == 0


def test_snapshot_restore_continues_bitwise():
    params = ReservoirParams(membrane_depth=4, esn_size=256)
    first = session(params)
    first.feed(BYTES[:5000])
    saved = Snapshot.from_bytes(first.snapshot().to_bytes(), np.dtype(params.dtype))
    rest_a = first.feed(BYTES[5000:])
    second = session(params)
    second.restore(saved)
    rest_b = second.feed(BYTES[5000:])
    assert rest_a.features.tobytes() == rest_b.features.tobytes()
    assert rest_a.digest == rest_b.digest


def test_depth_one_equals_a_textbook_leaky_esn():
    params = ReservoirParams(membrane_depth=1, esn_size=100, frame_size=8, dtype="float64")
    s = session(params)
    w = s.weights
    (W,) = w.recurrent_blocks()
    W_in, a = w.input_matrix(), w.leak[0]
    data = BYTES[:8 * 400]
    u = np.frombuffer(data, dtype=np.uint8).reshape(-1, 8) / 127.5 - 1
    x, expected = np.zeros(100), []
    for u_t in u:
        x = (1 - a) * x + a * np.tanh(W @ x + W_in @ u_t)
        expected.append(x.mean())
    got = s.feed(data)
    np.testing.assert_allclose(s.state, x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.features[:, 0], expected, rtol=0, atol=1e-12)


def mackey_glass(n, tau=17, beta=0.2, gamma=0.1, p=10, dt=1.0, substeps=10, discard=500):
    """Mackey–Glass integrated with RK4 (history held constant over each small step)."""
    h = dt / substeps
    delay = tau * substeps
    x = np.full(delay + 1, 1.2).tolist()
    def f(v, lag):
        return beta * lag / (1 + lag**p) - gamma * v

    out = []
    for i in range((n + discard) * substeps):
        v, lag = x[-1], x[-delay - 1]
        k1 = f(v, lag)
        k2 = f(v + h * k1 / 2, lag)
        k3 = f(v + h * k2 / 2, lag)
        k4 = f(v + h * k3, lag)
        x.append(v + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6)
        if i % substeps == substeps - 1:
            out.append(x[-1])
    return np.array(out[discard:])


def ridge(states, targets, alpha):
    X = np.hstack([states, np.ones((len(states), 1))])
    return np.linalg.solve(X.T @ X + alpha * np.eye(X.shape[1]), X.T @ targets), X


def test_mackey_glass_one_step_prediction():
    series = mackey_glass(2000)
    series = 2 * (series - series.min()) / (series.max() - series.min()) - 1
    params = ReservoirParams(
        membrane_depth=2, esn_size=300, frame_size=1, dtype="float64",
        spectral_radius=1.25, leak_rate=0.3, leak_decay=1.0, input_scaling=1.0, connectivity=10,
    )
    states = session(params).run(series[:-1, None], keep_states=True).states
    warm, train = 100, 1000
    w_out, _ = ridge(states[warm:train], series[warm + 1 : train + 1], 1e-6)
    _, X_test = ridge(states[train:], series[train + 1 :], 1e-6)
    rmse = np.sqrt(np.mean((X_test @ w_out - series[train + 1 :]) ** 2))
    assert rmse < 0.005


def test_memory_capacity_of_a_small_near_linear_reservoir():
    params = ReservoirParams(
        membrane_depth=1, esn_size=100, frame_size=1, dtype="float64",
        spectral_radius=0.95, leak_rate=1.0, input_scaling=0.02, connectivity=10,
    )
    u = np.random.default_rng(5).uniform(-1, 1, 6000)
    states = session(params).run(u[:, None], keep_states=True).states
    washout, split, max_delay = 200, 4000, 150
    capacity = 0.0
    for k in range(1, max_delay + 1):
        w, X_train = ridge(states[washout:split], u[washout - k : split - k], 1e-9)
        X_test = np.hstack([states[split:], np.ones((len(states) - split, 1))])
        capacity += np.corrcoef(X_test @ w, u[split - k : len(u) - k])[0, 1] ** 2
    assert capacity >= 30


def test_byte_input_does_not_saturate_with_default_parameters():
    text = (b"The quick brown fox jumps over the lazy dog. " * 400)
    for data in (text, BYTES):
        s = session(ReservoirParams())
        s.feed(data)
        assert np.mean(np.abs(s.state) > 0.95) < 0.01
        assert 0.02 < np.sqrt(np.mean(s.state.astype(np.float64) ** 2)) < 0.8


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"membrane_depth": 9}, "membrane_depth"),
        ({"membrane_depth": 0}, "membrane_depth"),
        ({"esn_size": 31}, "esn_size"),
        ({"esn_size": 5000}, "esn_size"),
        ({"frame_size": 0}, "frame_size"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"esn_size": True}, "esn_size"),
        ({"dtype": "int8"}, "dtype"),
        ({"spectral_radius": 0}, "spectral_radius"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_parameters_name_the_field(values, field):
    with pytest.raises(ParameterError) as err:
        ReservoirParams.from_mapping(values)
    assert err.value.field == field


def test_too_few_neurons_per_membrane_names_the_smallest_valid_size():
    with pytest.raises(ParameterError, match="smallest valid esn_size for that depth is 800"):
        ReservoirParams(membrane_depth=8, esn_size=512)


def test_weights_are_cached_and_shared():
    cache = WeightCache(maxsize=2)
    p1, p2, p3 = (ReservoirParams(esn_size=64, seed=s) for s in (1, 2, 3))
    assert cache.get(p1) is cache.get(p1)
    cache.get(p2)
    cache.get(p3)
    assert cache.info() == {"entries": 2, "maxsize": 2, "hits": 1, "misses": 3}
    assert not cache.get(p3).values.flags.writeable


def test_sessions_run_in_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor

    params = ReservoirParams(membrane_depth=3, esn_size=256)
    expected = feed_in_pieces(params, BYTES, [])[1].digest()
    with ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(lambda _: feed_in_pieces(params, BYTES, [4000])[1].digest(), range(8)))
    assert set(digests) == {expected}


def test_engine_imports_neither_flask_nor_gevent():
    code = "import sys, dtesn.engine; print(any(m in sys.modules for m in ('flask', 'gevent')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
