"""Start the real programs (sd-coordinator, sd-worker --async) as processes for e2e tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

# Stopping: how long a first SIGTERM may take (a worker drains the tasks it runs) before a
# second one, and how long that one may take before SIGKILL.
DRAIN_WAIT_S = 3.0
STOP_WAIT_S = 15.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def console_script(name: str) -> str:
    """Path of an installed console script (next to the running Python first)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: pip install -e .")
    return found


class Cluster:
    """A coordinator and workers as real processes, sharing one temporary DATA_DIR root."""

    def __init__(
        self, root: Path, *, queue: str | None, token: str = "test-token", **env: str
    ) -> None:
        self.root = root
        self.queue = queue
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.env = {
            **os.environ,
            "COORDINATOR_IP": "127.0.0.1",
            "COORDINATOR_PORT": str(self.port),
            "CLUSTER_TOKEN": token,
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        if queue is not None:
            self.env.update(RABBIT_HOST="127.0.0.1", QUEUE_NAME=queue)
        else:
            self.env.pop("RABBIT_HOST", None)

    # -- processes --------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], data_dir: Path, **env: str) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        self.logs[name] = log
        self.procs[name] = subprocess.Popen(
            args,
            env={**self.env, "DATA_DIR": str(data_dir), **env},
            cwd=data_dir,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_coordinator(self, timeout_s: float = 30, **env: str) -> None:
        """Start sd-coordinator and wait until it answers."""
        self._spawn(
            "coordinator", [console_script("sd-coordinator")], self.root / "coordinator", **env
        )
        self.wait_until(lambda: self._healthy(), timeout_s, "coordinator to answer /health")

    def launch_worker(self, name: str, **env: str) -> None:
        """Start `sd-worker --async --name NAME` (without waiting for anything)."""
        self._spawn(
            name, [console_script("sd-worker"), "--async", "--name", name], self.root / name, **env
        )

    def start_worker(self, name: str, timeout_s: float = 30, **env: str) -> None:
        """Start `sd-worker --async --name NAME` and wait until the coordinator sees it alive."""
        self.launch_worker(name, **env)
        self.wait_until(
            lambda: self.worker(name).get("alive") is True, timeout_s, f"worker {name} to register"
        )

    def wait_consuming(self, *names: str, timeout_s: float = 30) -> None:
        """Wait until each named worker reports consumers on the queue: a job that arrives while
        only one of them consumes goes whole into that one's prefetch window."""
        for name in names:
            self.wait_until(
                lambda name=name: self.worker(name).get("consumers", 0) > 0,
                timeout_s,
                f"worker {name} to consume",
            )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to a process and wait for it to exit."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=60)

    def send_signal(self, name: str, sig: int, timeout_s: float = 60) -> int:
        """Send `sig` to a process's group (as a terminal or systemd would) and return its exit
        code; AssertionError if it is still running after `timeout_s`."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"{name} still runs {timeout_s:.0f} s after signal {sig}\n{self.log_tail()}"
                ) from None
        return int(proc.returncode)

    def running(self, name: str) -> bool:
        """True while the process runs."""
        return self.procs[name].poll() is None

    def stop(self) -> None:
        """Stop every process: SIGTERM to all; to those still running after DRAIN_WAIT_S
        (a worker finishing long tasks) a second SIGTERM, which stops a worker at once with
        its tasks back in the queue; SIGKILL to what still runs STOP_WAIT_S after that."""
        for wait_s in (DRAIN_WAIT_S, STOP_WAIT_S):
            running = [p for p in self.procs.values() if p.poll() is None]
            for proc in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + wait_s
            for proc in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for name, proc in self.procs.items():
            if proc.poll() is None:
                self.kill(name)

    def log_tail(self, lines: int = 40) -> str:
        """The end of every process's log, for assertion messages."""
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            parts.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    # -- HTTP -------------------------------------------------------------------------------

    def client(self, timeout_s: float = 30) -> httpx.Client:
        """An HTTP client for the coordinator (sends the cluster token)."""
        return httpx.Client(
            base_url=self.url, timeout=timeout_s, headers={"Authorization": f"Bearer {self.token}"}
        )

    def _healthy(self) -> bool:
        try:
            with self.client(2) as c:
                return c.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def worker(self, name: str) -> dict[str, Any]:
        """The coordinator's view of one worker ({} if unknown or unreachable)."""
        try:
            with self.client(5) as c:
                return dict(c.get("/workers").json().get(name, {}))
        except httpx.HTTPError:
            return {}

    def upload(
        self, files: list[tuple[str, bytes]], ops: str = "grayscale", copies: int = 1
    ) -> dict[str, Any]:
        """POST /upload and return the 202 answer."""
        with self.client() as c:
            response = c.post(
                "/upload",
                files=[("file", (name, data)) for name, data in files],
                data={"ops": ops, "copies": str(copies)},
            )
        assert response.status_code == 202, response.text
        return dict(response.json())

    def submit_task(
        self, type_name: str, payload: dict[str, Any], copies: int = 1
    ) -> dict[str, Any]:
        """POST /task and return the 202 answer."""
        with self.client() as c:
            response = c.post(
                "/task", json={"type": type_name, "payload": payload, "copies": copies}
            )
        assert response.status_code == 202, response.text
        return dict(response.json())

    def snapshot(self) -> dict[str, Any]:
        """The first cluster snapshot that GET /events pushes (workers, totals, tps, jobs)."""
        with self.client() as c, c.stream("GET", "/events") as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: "):
                    return dict(json.loads(line[len("data: ") :]))
        raise AssertionError("/events closed before sending a snapshot")

    @property
    def results_dir(self) -> Path:
        """Where the coordinator stores result files."""
        return self.root / "coordinator" / "results"

    def job(self, job_id: str) -> dict[str, Any]:
        """GET /jobs/{job_id}."""
        with self.client() as c:
            response = c.get(f"/jobs/{job_id}")
        response.raise_for_status()
        return dict(response.json())

    def wait_job(self, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
        """Wait until the job is done or failed and return it."""
        result: dict[str, Any] = {}

        def finished() -> bool:
            nonlocal result
            try:
                result = self.job(job_id)
            except httpx.HTTPError:
                return False
            return result["state"] in ("done", "failed")

        self.wait_until(finished, timeout_s, f"job {job_id} to finish")
        return result

    def wait_until(self, predicate: Any, timeout_s: float, what: str) -> None:
        """Poll `predicate` until true; fail with the processes' logs otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None and name == "coordinator" and "coordinator" in what:
                    raise AssertionError(f"{name} exited ({proc.returncode})\n{self.log_tail()}")
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n{self.log_tail()}")


def new_id() -> str:
    return uuid.uuid4().hex
