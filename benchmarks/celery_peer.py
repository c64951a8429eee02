"""The peer: Celery on the same RabbitMQ doing the same Pillow work.

Run by the benchmark as `celery -A benchmarks.celery_peer worker --pool=prefork -c 2 -Q QUEUE`.
Celery keeps its defaults (classic durable queue, early ack, prefetch multiplier 4, rpc://
results) except that image bytes travel pickled, the cheapest way Celery can carry bytes.
"""

from __future__ import annotations

import os

from celery import Celery

from benchmarks import workload

QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench-celery")
BROKER = os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")

app = Celery("celery_peer", broker=BROKER, backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="pickle",
    accept_content=["json", "pickle"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # No pidbox queue: other Celery workers on this machine must not collide with ours.
    worker_enable_remote_control=False,
)


@app.task(name="bench.gray_bytes")
def gray_bytes(data: bytes) -> bytes:
    """Image bytes in the message, PNG bytes in the result."""
    return workload.gray_bytes(data)


@app.task(name="bench.gray_path")
def gray_path(src: str, dst: str) -> str:
    """File paths in the message; the PNG goes to a file."""
    return workload.gray_path(src, dst)


@app.task(name="bench.gray_natural")
def gray_natural(src: str, dst: str) -> str:
    """Celery's natural task: Pillow's default PNG save."""
    return workload.gray_natural(src, dst)


@app.task(name="bench.thumb_bytes")
def thumb_bytes(data: bytes) -> bytes:
    """Thumbnail with image bytes in the message."""
    return workload.thumb_bytes(data)


@app.task(name="bench.thumb_path")
def thumb_path(src: str, dst: str) -> str:
    """Thumbnail with file paths in the message."""
    return workload.thumb_path(src, dst)


@app.task(name="bench.noop")
def noop() -> None:
    """A task that does nothing."""
    workload.noop()
