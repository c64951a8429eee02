"""A coordinator told to stop while answers are open that last (a dashboard's event streams, a
client's results long poll) ends them at once and stops cleanly, instead of waiting out
uvicorn's graceful-shutdown timeout and then cancelling them with an error."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from support.cluster import Cluster

pytestmark = pytest.mark.e2e


def test_ctrl_c_ends_event_streams_and_long_polls_and_stops_cleanly(
    embedded_cluster: Cluster,
) -> None:
    cluster = embedded_cluster
    cluster.start_coordinator()
    with cluster.client() as client:
        job_id = client.post("/jobs", json={"ops": "grayscale"}).json()["job_id"]
    ended: dict[str, object] = {}
    streaming = threading.Barrier(4)

    def read_stream(name: str, path: str) -> None:
        with cluster.client() as client, client.stream("GET", path) as answer:
            streaming.wait(timeout=30)
            for _ in answer.iter_bytes():  # a stream cut off by the server raises here
                pass
            ended[name] = answer.status_code

    def long_poll() -> None:
        with cluster.client() as client:
            streaming.wait(timeout=30)
            ended["results"] = client.get(f"/jobs/{job_id}/results", params={"wait": 4}).status_code

    threads = [
        threading.Thread(target=read_stream, args=("events", "/events")),
        threading.Thread(target=read_stream, args=("academic", "/academico/events")),
        threading.Thread(target=long_poll),
    ]
    for thread in threads:
        thread.start()
    streaming.wait(timeout=30)
    time.sleep(0.5)  # the long poll is waiting in the coordinator
    assert not ended, ended  # nothing ends by itself

    started = time.monotonic()
    assert cluster.send_signal("coordinator", signal.SIGINT, timeout_s=30) == 0
    stopped_in = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=10)
    log = cluster.logs["coordinator"].read_text()
    assert ended == {"events": 200, "academic": 200, "results": 200}, (ended, log)
    # Waiting out uvicorn's timeout logs "Cancel 3 running task(s), timeout graceful shutdown
    # exceeded" and a traceback for each request it cancels.
    assert "graceful shutdown exceeded" not in log and "Traceback" not in log, log
    assert stopped_in < 5, (stopped_in, log)  # under uvicorn's 5 s graceful-shutdown timeout
