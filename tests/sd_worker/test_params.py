"""get_optimal_params: a pure function, tested on the cases a cluster meets."""

from __future__ import annotations

import pytest

from sd_worker.params import (
    IDLE_PREFETCH,
    MAX_PREFETCH,
    SHARE_HELD,
    consuming_workers,
    get_optimal_params,
    pending_tasks,
)


def test_idle_queue_keeps_one_consumer_per_core_with_a_small_buffer() -> None:
    assert get_optimal_params(0, 1, 4) == (4, IDLE_PREFETCH)


def test_long_queue_raises_prefetch_up_to_the_cap() -> None:
    consumers, prefetch = get_optimal_params(100_000, 1, 2)
    assert consumers == 2
    assert prefetch == MAX_PREFETCH


def test_prefetch_follows_this_workers_fair_share() -> None:
    # 480 ready, 3 workers: 160 each, half held at once (the rest stays queued for whoever runs
    # out first), over 2 consumers = 40 per consumer.
    assert SHARE_HELD == 2
    assert get_optimal_params(480, 3, 2) == (2, 40)


def test_pending_counts_tasks_in_messages_of_several_so_three_workers_share_a_batched_job() -> None:
    # A 200-task job goes 3 tasks a message: 67 ready messages are 201 tasks to share. Counted
    # as 67, each of three workers held one message a consumer, 6 tasks for its two cores.
    assert pending_tasks(67, 3, held=0) == 201
    consumers, prefetch_tasks = get_optimal_params(pending_tasks(67, 3, held=0), 3, 2)
    assert (consumers, prefetch_tasks // 3) == (2, 5)
    assert pending_tasks(0, 3, held=12) == 12  # what it holds keeps its prefetch up
    assert pending_tasks(10, 8, held=0, unfinished=4000) == 4000  # the coordinator knows more
    assert pending_tasks(10, 0, held=0) == 10


def test_short_queue_spreads_over_workers_instead_of_one_hoarding_it() -> None:
    # 3 tasks, 3 workers of 8 cores: each takes about one.
    consumers, prefetch = get_optimal_params(3, 3, 8)
    assert consumers * prefetch <= 2 * IDLE_PREFETCH
    assert consumers == 1


@pytest.mark.parametrize("pending", [0, 1, 7, 50, 10_000, 10**9])
@pytest.mark.parametrize("live", [0, 1, 2, 5, 100])
@pytest.mark.parametrize("cpus", [0, 1, 2, 16])
def test_params_are_always_positive_and_bounded(pending: int, live: int, cpus: int) -> None:
    consumers, prefetch = get_optimal_params(pending, live, cpus)
    assert 1 <= consumers <= max(1, cpus)
    assert 1 <= prefetch <= MAX_PREFETCH


def test_more_workers_never_means_more_prefetch_each() -> None:
    alone = get_optimal_params(1000, 1, 2)
    shared = get_optimal_params(1000, 4, 2)
    assert shared[0] * shared[1] <= alone[0] * alone[1]


@pytest.mark.parametrize("pending", [1, 37, 5_000])
def test_a_lone_worker_takes_the_cap_as_soon_as_anything_is_queued(pending: int) -> None:
    # Its first look at a job comes while the job is still being published.
    assert get_optimal_params(pending, 1, 2) == (2, MAX_PREFETCH)
    assert get_optimal_params(0, 1, 2) == (2, IDLE_PREFETCH)


def test_paused_and_departed_workers_have_no_consumers_so_count_for_nothing() -> None:
    # Two paused nodes cancelled their consumers: the broker counts only this worker's two.
    assert consuming_workers(2, other_consumers=0) == 1
    alone = get_optimal_params(600, 1, 2)
    assert get_optimal_params(600, consuming_workers(2, other_consumers=0), 2) == alone


def test_nodes_reporting_paused_are_not_counted_by_the_coordinators_tally_either() -> None:
    assert consuming_workers(2, other_consumers=None, other_cpus=0) == 1


def test_three_workers_consuming_share_the_queue_in_thirds() -> None:
    live = consuming_workers(2, other_consumers=4, other_cpus=4)
    assert live == 3
    assert get_optimal_params(600, live, 2) == get_optimal_params(600, 3, 2) == (2, 50)


def test_a_node_with_more_cores_counts_for_more_so_the_share_is_per_core() -> None:
    # Beside an 8-core node (8 consumers), a 2-core worker is a fifth of the cluster's cores.
    live = consuming_workers(2, other_consumers=8, other_cpus=8)
    assert live == 5
    assert get_optimal_params(1000, live, 2) == (2, 50)


@pytest.mark.parametrize(
    ("consumers", "cpus", "expected"),
    [(12, 4, 3), (4, 12, 3), (4, None, 3), (None, 4, 3), (None, None, 1)],
)
def test_the_smaller_of_the_two_counts_of_the_others_is_used(
    consumers: int | None, cpus: int | None, expected: float
) -> None:
    # The broker still counts cancelled consumers with tasks in hand; the coordinator still
    # counts a worker killed a moment ago: each count errs upwards, never downwards.
    assert consuming_workers(2, other_consumers=consumers, other_cpus=cpus) == expected


@pytest.mark.parametrize("others", [-3, 0, 1, 5])
def test_the_count_is_never_below_this_worker_alone(others: int) -> None:
    assert consuming_workers(2, other_consumers=others) == 1 + max(0, others) / 2 >= 1
