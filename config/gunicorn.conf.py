"""gunicorn settings for dtesn-stream: `gunicorn -c config/gunicorn.conf.py app:app`.

Read by the master before any worker starts. Values come from config/dtesn.toml and the
DTESN_* environment (see the README), plus the PaaS conventions PORT and WEB_CONCURRENCY.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

from dtesn.settings import Settings, SettingsError  # the installed package: pip install -e .
from dtesn.storage.datasets import usable_directory
from dtesn.storage.errors import StoreUnavailable
from dtesn.streaming.bandwidth import PolicyError, load_policies


def _redis_refusal(url: str) -> str:
    """Why Redis at `url` cannot be used ("" when it answers a PING), asked from a forked
    child: the master must not import redis-py, which imports ssl, before gevent patches it
    in the workers forked from here (gevent warns, and TLS connections could misbehave)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one PING, its answer down the pipe, then gone without cleanup
        os.close(read)
        try:
            from dtesn.storage.redis_connection import connect

            connect(url).close()
            answer = b""
        except StoreUnavailable as exc:
            answer = str(exc).encode()
        except BaseException as exc:  # noqa: BLE001 - reported by the master in one line
            answer = f"{type(exc).__name__}: {exc}".encode()
        os.write(write, answer)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer.decode(errors="replace")


try:
    _settings = Settings.load()
    load_policies()
    if not _settings.redis_url:
        usable_directory(_settings.dataset_path)
    elif _refusal := _redis_refusal(_settings.redis_url):
        sys.exit(f"dtesn-stream: invalid configuration: redis_url: {_refusal} (env DTESN_REDIS_URL)")
except StoreUnavailable as exc:
    sys.exit(f"dtesn-stream: invalid configuration: dataset_dir {_settings.dataset_path}: {exc} (env DTESN_DATASET_DIR)")
except (SettingsError, PolicyError) as exc:
    sys.exit(f"dtesn-stream: invalid configuration: {exc}")
# Checked here, once: the workers (forked from here) must not fail to boot when Redis is down
# later (a restarted worker would stop the whole server); see dtesn/web/extension.py.
os.environ["DTESN_STARTUP_CHECKED"] = "1"

# Prometheus multiprocess mode (see dtesn/runtime/metrics.py): every worker writes its values
# under one directory, which must be empty when the master starts (values of an earlier run
# would be added in) and exist before a worker imports prometheus_client. A directory given
# in PROMETHEUS_MULTIPROC_DIR is emptied; else one is made, and removed when the master exits.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_made_metrics_dir = not _metrics_dir
if _metrics_dir:
    Path(_metrics_dir).mkdir(parents=True, exist_ok=True)
    for _old in Path(_metrics_dir).glob("*.db"):
        _old.unlink()
else:
    _metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dtesn-metrics-")

# One BLAS thread per worker: workers are the unit of parallelism, and several BLAS threads
# per worker would fight over the same cores. Set before the workers import NumPy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# The gevent worker: each stream is a greenlet; engine work runs in gevent's thread pool.
# No preload_app: gevent must monkey-patch in the worker before the app is imported.
worker_class = "dtesn.worker.JSONErrorsWorker"  # gunicorn's gevent worker; its parse errors in JSON
preload_app = False

# A PaaS gives PORT and expects 0.0.0.0; locally we bind loopback. DTESN_BIND wins over both.
_port = os.environ.get("PORT")
bind = os.environ.get("DTESN_BIND") or (f"0.0.0.0:{_port}" if _port else "127.0.0.1:8000")

try:
    workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
except ValueError:
    sys.exit("dtesn-stream: invalid configuration: WEB_CONCURRENCY must be an integer")
if workers < 1:
    sys.exit("dtesn-stream: invalid configuration: WEB_CONCURRENCY must be at least 1")

#: The worker's GIL switch interval; see post_worker_init.
SWITCH_INTERVAL_S = 0.0005

worker_connections = _settings.worker_connections
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
keepalive = _settings.keepalive

# We log one line per request ourselves (with the request id); gunicorn's errors go to stderr.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("DTESN_LOG_LEVEL", "info")

# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), which
# several instances on one machine (tests, a PaaS dyno's neighbours) would fight over.
control_socket_disable = True


def on_starting(server) -> None:
    """In the master, before any worker exists: compile the step kernel (or load it from
    numba's cache), so every worker forked from here has it ready before its first request
    (1.4 s with an empty cache, 0.45 s from it). NUMBA_CACHE_DIR, when set, says where the
    cache lives; see the README.

    First, malloc is told to keep the buffers streams free (dtesn/runtime/allocator.py): set
    here, it holds in every worker forked from here from its first allocation on."""
    from dtesn.engine import warm_up
    from dtesn.runtime.allocator import keep_freed_buffers

    keep_freed_buffers(_settings.malloc_threshold_bytes)
    warm_up()


def post_worker_init(worker) -> None:
    """Per worker: resumable errors for open streams on SIGTERM (a deploy) before the worker
    exits, a shorter GIL switch interval, and shorter garbage-collection pauses."""
    from dtesn.runtime import gc_pauses
    from dtesn.web import idle_connections, kit

    app = worker.wsgi
    connections = idle_connections(app)

    def stop_keeping_alive() -> None:
        # A connection whose stream just ended would otherwise wait idle for its next request
        # (up to `keepalive`), holding the worker until graceful_timeout; so would one that was
        # idle already, whose keep-alive timer started before this.
        worker.cfg.set("keepalive", 0)
        if connections is not None:
            connections.end_idle()

    kit(app).runtime.drain.watch(lambda: worker.alive, then=stop_keeping_alive)
    # A thread waiting for the GIL gets it after at most this long (CPython's default: 5 ms).
    # The next batch of a stream starts on the other engine thread the moment the one before
    # has computed, while that thread encodes holding the GIL: at 5 ms, every batch start
    # waited about 5 ms (9% of a stream_chunks stream at esn 512); at 0.5 ms, 1-2%.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc_pauses.shorten()  # last: what start-up created is frozen out of the collector's way


def child_exit(server, worker) -> None:
    """In the master, when a worker exits: its live gauges (active streams) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server) -> None:
    if _made_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
