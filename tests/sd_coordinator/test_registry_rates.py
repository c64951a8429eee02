"""Worker registry (liveness, name ownership) and the throughput window."""

from __future__ import annotations

import time

import pytest

from sd_common.messages import WorkerHello, Working
from sd_coordinator.errors import Conflict, NotFound
from sd_coordinator.rates import RateWindow
from sd_coordinator.registry import Registry


def test_worker_goes_offline_after_three_silent_intervals() -> None:
    registry = Registry(report_interval_s=0.05)
    registry.register(WorkerHello(name="w1", session="s1", cpu=10), is_local=False)
    assert registry.snapshot()["w1"]["alive"] is True
    time.sleep(0.2)
    view = registry.snapshot()["w1"]
    assert view["alive"] is False and view["status"] == "offline"


def test_a_live_name_cannot_be_taken_by_another_session() -> None:
    registry = Registry(report_interval_s=0.05)
    registry.register(WorkerHello(name="w1", session="s1"), is_local=False)
    with pytest.raises(Conflict):
        registry.register(WorkerHello(name="w1", session="intruder"), is_local=False)
    with pytest.raises(NotFound):
        registry.report(WorkerHello(name="w1", session="intruder"), is_local=False)
    time.sleep(0.2)
    registry.register(WorkerHello(name="w1", session="s2"), is_local=False)  # stale: allowed


def test_working_updates_the_current_task() -> None:
    registry = Registry()
    registry.register(WorkerHello(name="w1", session="s1"), is_local=True)
    registry.working(Working(name="w1", session="s1", status="busy", task_id="t" * 32))
    view = registry.snapshot()["w1"]
    assert (view["status"], view["task_id"], view["is_local"]) == ("busy", "t" * 32, True)


def test_rate_counts_only_the_last_window() -> None:
    rates = RateWindow(window_s=5.0)
    rates.record(10, now=100.0)
    rates.record(15, now=103.0)
    assert rates.rate(now=104.0) == pytest.approx(25 / 5)
    assert rates.rate(now=107.5) == pytest.approx(15 / 5)
    assert rates.rate(now=200.0) == 0
