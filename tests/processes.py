"""Real processes for tests: `hotline serve` as a subprocess, and a Redis server to share."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# `hotline serve`, but with its imports (seconds of CPU, mostly aiogram) done before the go
# signal on stdin: warm stand-ins replace a killed server at once, as a supervisor would, and
# the tests stay short. What runs after the signal is the real command.
STANDBY = """
import pathlib
import sys
import hotline.app
from hotline.cli import main
pathlib.Path(sys.argv[1]).touch()
sys.stdin.readline()
sys.argv = ["hotline", "serve", *sys.argv[2:]]
main()
"""


class ServeProcess:
    """`hotline serve` as a real process (in-process outbox worker on, no Telegram unless
    `env` configures it). `env` adds or overrides variables of the process environment."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        name: str = "serve",
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TELEGRAM_"))
        }
        self.env.update(
            HOTLINE_DATABASE_URL=database_url,
            HOTLINE_ENV="test",
            HOTLINE_WORKER_IN_PROCESS="true",
            HOTLINE_LOG_LEVEL="WARNING",
        )
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.standbys: list[subprocess.Popen[bytes]] = []
        self.launched = 0
        self.starts = 0
        self.kills = 0
        self.start_seconds: list[float] = []

    def prepare(self, count: int) -> None:
        """Launch `count` stand-ins (they import the app in parallel); `wait_ready` waits."""
        self.launch(count)
        self.wait_ready()

    def launch(self, count: int) -> None:
        for _ in range(count):
            flag = self._flag(self.launched)
            self.launched += 1
            with self.log_path.open("ab") as log:
                self.standbys.append(
                    subprocess.Popen(
                        [sys.executable, "-c", STANDBY, str(flag), "--port", str(self.port)],
                        env=self.env,
                        cwd=self.workdir,
                        stdin=subprocess.PIPE,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

    def wait_ready(self, timeout: float = 120) -> None:
        flags = [self._flag(n) for n in range(self.launched)]
        deadline = time.monotonic() + timeout
        while not all(flag.exists() for flag in flags):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.standbys):
                raise RuntimeError(f"stand-ins did not get ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def _flag(self, n: int) -> Path:
        return self.workdir / f"{self.name}-standby-{n}.ready"

    def start(self) -> None:
        """Serve on the port: the next warm stand-in takes over."""
        proc = self.standbys.pop(0)
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        self.proc = proc
        self.starts += 1
        began = time.monotonic()
        deadline = began + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"hotline serve exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    self.start_seconds.append(time.monotonic() - began)
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"hotline serve did not answer within 60 s:\n{self.log_tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def stop(self) -> None:
        for proc in [self.proc, *self.standbys]:
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets its own Redis database (15, 14, …), so one worker's
    FLUSHDB never wipes another's keys; without xdist the URL stays as configured."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    index = int(worker[2:])
    return urlunsplit(parts._replace(path=f"/{(base - index) % 16}"))


@contextmanager
def redis_for_tests() -> Iterator[str]:
    """HOTLINE_TEST_REDIS_URL (set by .ci/run: the machine's Redis, a spare database), else a
    private redis-server on a free port; in CI (CI set) a missing Redis fails, never skips."""
    configured = os.environ.get("HOTLINE_TEST_REDIS_URL")
    if configured:
        yield _worker_database(configured)
        return
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(
                "no Redis for the tests: set HOTLINE_TEST_REDIS_URL or install redis-server"
            )
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
