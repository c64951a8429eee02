"""How many consumers and how much prefetch a worker should use, from the cluster's state."""

from __future__ import annotations

import math

# Per consumer. A worker's window (consumers × prefetch) must cover the tasks that wait for their
# batch of outcomes to be stored and acked, or cheap tasks stall on each round trip; it also
# bounds how far a remote worker fetches inputs ahead of its pool (OPTIMISATIONS.md).
MAX_PREFETCH = 128
IDLE_PREFETCH = 2
# Beside other workers, a worker holds at most this part of its share at once: the rest stays
# queued for whichever worker runs out first, so a job's end is not one worker's backlog.
SHARE_HELD = 2


def consuming_workers(
    cpus: int, *, other_consumers: int | None, other_cpus: int | None = None
) -> float:
    """How many workers consume the queue, this one included, counted in workers of its size.

    Two counts of the others, each an upper bound that errs in its own way, so the smaller
    one is used (either may be unknown: None):

    - `other_consumers`: the broker's count of consumers on the work queue less this worker's
      own. A worker runs one consumer per core while it has a share to take, so over this
      worker's `cpus` it is how many workers like this one share the queue. Paused and
      draining workers cancel their consumers and a stopped or killed one's go with its
      connection, so none counts; but a quorum queue still counts a cancelled consumer until
      its deliveries are settled (a worker that re-tunes or pauses with tasks in hand).
    - `other_cpus`: the cores of the other workers that report themselves consuming (status
      free or busy) to the coordinator; a worker killed a moment ago still counts until it
      has been silent for three report intervals.

    A node with twice the cores counts twice, so the share becomes a share per core. The
    answer is at least 1 (this worker).
    """
    estimates = [n for n in (other_consumers, other_cpus) if n is not None]
    others = max(0, min(estimates)) if estimates else 0
    return 1 + others / max(1, cpus)


def pending_tasks(ready_messages: int, per_message: int, held: int, unfinished: int = 0) -> int:
    """The tasks to share out, for `get_optimal_params`.

    - The broker counts ready messages, and a message may carry several tasks: `per_message`,
      as in this worker's latest delivery.
    - The tasks this worker holds (`held`) count too: a queue kept empty by a fast consumer must
      not shrink its prefetch back to idle.
    - The coordinator's count of unfinished tasks (`unfinished`, 0 when not known lately) holds
      the whole of each job, the part other workers hold and the part still being published:
      the share is of that when it is larger.
    """
    return max(ready_messages * max(1, per_message) + held, unfinished)


def get_optimal_params(pending: int, live_workers: float, cpus: int) -> tuple[int, int]:
    """Return `(consumers, prefetch)` for a worker with `cpus` cores.

    `pending` is the number of tasks to share out (`pending_tasks`; the answer's prefetch is in
    tasks too, which the worker turns into messages of several) and `live_workers` the number
    of workers consuming it, this one included: in workers of this one's size, so it may be
    fractional (see `consuming_workers`). Workers that report to the coordinator but take
    nothing (paused by CPU_LIMIT, draining) are not in it. The aim is
    to keep every core of the process pool busy, with a small buffer so a core never waits for
    the network, without one worker hoarding messages that idle workers could run:

    - one consumer per core, so deliveries and result posts overlap (at least one);
    - prefetch per consumer grows with this worker's fair share of the queue, of which it
      holds `1 / SHARE_HELD` at once: `ceil(pending / live_workers) / SHARE_HELD / consumers`,
      between IDLE_PREFETCH (an idle queue still keeps a message ready per core) and
      MAX_PREFETCH (memory and redelivery cost of a kill stay bounded by prefetch, not by
      queue depth);
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
    prefetch = min(MAX_PREFETCH, max(IDLE_PREFETCH, math.ceil(share / SHARE_HELD / consumers)))
    return consumers, prefetch
