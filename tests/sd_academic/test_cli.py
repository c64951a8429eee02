"""sd-academic's command line: help, the one-line refusals, a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from support.broker import delete_queue_and_exchange_sync
from support.cluster import console_script, free_port


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RABBIT_", "ACADEMIC_"))}
    return subprocess.run(
        [console_script("sd-academic"), *args],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_names_the_settings_it_reads(tmp_path: Path) -> None:
    result = run(["--help"], tmp_path)
    assert result.returncode == 0
    assert "ACADEMIC_QUEUE" in result.stdout and "--data-dir" in result.stdout


def test_without_rabbit_host_it_says_the_coordinator_runs_the_service_itself(
    tmp_path: Path,
) -> None:
    result = run([], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: RABBIT_HOST is not set")


def test_an_unreachable_broker_is_one_actionable_line(tmp_path: Path) -> None:
    result = run([], tmp_path, RABBIT_HOST="127.0.0.1", RABBIT_PORT=str(free_port()))
    assert result.returncode == 2
    assert "cannot reach RabbitMQ" in result.stderr and "Traceback" not in result.stderr


def test_a_database_folder_that_is_a_file_is_one_actionable_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    result = run(
        ["--db", str(tmp_path / "a-file" / "x.sqlite3")], tmp_path, RABBIT_HOST="127.0.0.1"
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot use the database's folder"), result.stderr
    assert "--db" in result.stderr and "Traceback" not in result.stderr


def test_a_damaged_database_is_one_actionable_line(tmp_path: Path) -> None:
    (tmp_path / "x.sqlite3").write_bytes(b"this is no SQLite database" * 100)
    result = run(["--db", str(tmp_path / "x.sqlite3")], tmp_path, RABBIT_HOST="127.0.0.1")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"error: cannot read the academic records' database {tmp_path / 'x.sqlite3'} "
        "(file is not a database)"
    ), result.stderr
    assert "move it away" in result.stderr and "Traceback" not in result.stderr


def test_sigterm_stops_it_cleanly(tmp_path: Path, rabbitmq: None) -> None:
    tag = uuid.uuid4().hex[:10]
    queue, exchange = f"sdtest-academico-{tag}.rpc", f"sdtest-academico-{tag}.events"
    log = tmp_path / "academic.log"
    env = {
        **os.environ,
        "RABBIT_HOST": "127.0.0.1",
        "DATA_DIR": str(tmp_path),
        "ACADEMIC_QUEUE": queue,
        "ACADEMIC_EXCHANGE": exchange,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [console_script("sd-academic")],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "sd-academic ready" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        assert (tmp_path / "academico.sqlite3").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()
        delete_queue_and_exchange_sync(queue, exchange)
