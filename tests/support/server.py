"""A real gunicorn+gevent server, started exactly as the Procfile does, stopped by its PID.

It binds 127.0.0.1 and a free port; its stdout and stderr go to a log file the tests read.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
PROCFILE_COMMAND = (ROOT / "Procfile").read_text().split(":", 1)[1].split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A gunicorn process running the app; `url` is its base address."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None, port: int | None = None,
                 command: list[str] | None = None, ready_path: str = "/health", root: Path = ROOT) -> None:
        """`command` (default: the Procfile's) runs from `root` (default: this repository);
        its first word is a script of this virtual environment.

        `root` is where the server's code comes from: gunicorn puts the directory it starts in
        first on sys.path (before PYTHONPATH), so another checkout's code runs only when
        gunicorn starts there (a PYTHONPATH or --chdir to it still imports this one's)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"server-{self.port}.log"
        self.ready_path = ready_path
        bin_dir = Path(sys.executable).parent
        command = command or PROCFILE_COMMAND
        command = [str(bin_dir / command[0]), *command[1:]]
        full_env = {
            **os.environ,
            "DTESN_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": "1",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self._log = self.log_path.open("wb")
        if command[1:2] != ["-c"]:  # not our config: bind as it would
            command += ["--bind", full_env["DTESN_BIND"]]
        self.process = subprocess.Popen(command, cwd=root, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if requests.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or booting slowly
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def worker_cpu_s(self) -> float:
        """User + system CPU seconds of the (first) worker so far (fields 14 and 15 of its
        stat): on a shared machine, CPU time drifts less than wall time."""
        fields = self._worker_stat()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def worker_minor_faults(self) -> int:
        """Pages the (first) worker has faulted in so far without disk I/O (field 10)."""
        return int(self._worker_stat()[7])

    def _worker_stat(self) -> list[str]:
        """/proc/<worker>/stat's fields after the command name (field 3 on)."""
        return Path(f"/proc/{self.worker_pids()[0]}/stat").read_text().rsplit(")", 1)[1].split()

    def stop(self) -> None:
        """Quick shutdown (SIGQUIT): a graceful one (SIGTERM) waits up to graceful_timeout
        for idle keep-alive connections that test clients leave open."""
        stop_process(self.process, signal.SIGQUIT, 30)
        self._log.close()


def stop_process(process: subprocess.Popen, sig: int, timeout: float) -> None:
    """`sig` to a process we started (by its PID), then SIGKILL if it outlives `timeout`."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
