"""How many consumers and how much prefetch a worker should use, from the cluster's state."""

from __future__ import annotations

import math

# Per consumer. A worker's window (consumers × prefetch) must cover the tasks that wait for their
# batch of outcomes to be stored and acked, or cheap tasks stall on each round trip: on two
# cores 64 ran 6–9 % more no-ops a second than 32, and 128 another 5–15 % over 64, thumbnails
# unchanged (benchmarks/OPTIMISATIONS.md). 256 looked a little faster still on no-ops, but a
# worker starts fetching each delivered task's input at once, so the window also bounds how far
# a remote worker reads ahead of its pool.
MAX_PREFETCH = 128
IDLE_PREFETCH = 2


def consuming_workers(queue_consumers: int, own_consumers: int, cpus: int) -> float:
    """How many workers consume the queue, counted in workers of this one's size.

    `queue_consumers` is the broker's own count of consumers on the work queue (this worker's
    included when it consumes), `own_consumers` how many of them are this worker's and `cpus`
    its pool size. A worker runs one consumer per core while it has a share to take, so the
    other consumers over this worker's cores is how many workers like this one share the queue
    with it, and a node with twice the cores counts twice: the share becomes a share per core.
    Paused and draining workers have cancelled their consumers and a stopped or killed one's
    went with its connection, so none of them is counted. The answer is at least 1 (this one).
    """
    others = max(0, queue_consumers - max(0, own_consumers))
    return 1 + others / max(1, cpus)


def get_optimal_params(pending: int, live_workers: float, cpus: int) -> tuple[int, int]:
    """Return `(consumers, prefetch)` for a worker with `cpus` cores.

    `pending` is the number of ready messages in the work queue (plus those this worker holds)
    and `live_workers` the number of workers consuming it, this one included: in workers of
    this one's size, so it may be fractional (see `consuming_workers`). Workers that report to
    the coordinator but take nothing (paused by CPU_LIMIT, draining) are not in it. The aim is
    to keep every core of the process pool busy, with a small buffer so a core never waits for
    the network, without one worker hoarding messages that idle workers could run:

    - one consumer per core, so deliveries and result posts overlap (at least one);
    - prefetch per consumer grows with this worker's fair share of the queue,
      `ceil(pending / live_workers) / consumers`, between IDLE_PREFETCH (an idle queue still
      keeps a message ready per core) and MAX_PREFETCH (memory and redelivery cost of a kill
      stay bounded by prefetch, not by queue depth);
    - a queue shorter than the cluster's cores gets fewer consumers, so a few tasks spread
      over all workers instead of landing on the first one;
    - a lone worker with anything queued takes MAX_PREFETCH: it has nobody to leave tasks to,
      and its first look at a new job comes while the job is still being published (the
      queue then holds a few dozen of its thousands of tasks), so its fair share of that
      would starve its pool for another look.

    Pure and cheap: the worker re-evaluates it every few seconds, and every fraction of a
    second while a job arrives, and applies changes live.
    """
    cpus = max(1, cpus)
    live_workers = max(1.0, live_workers)
    pending = max(0, pending)
    if pending and live_workers == 1:
        return cpus, MAX_PREFETCH
    share = math.ceil(pending / live_workers)
    if pending and share < cpus:
        consumers = max(1, share)
        return consumers, IDLE_PREFETCH
    consumers = cpus
    prefetch = min(MAX_PREFETCH, max(IDLE_PREFETCH, math.ceil(share / consumers)))
    return consumers, prefetch
