"""The process-wide settings both programs apply once started."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sd_common.cli import GC_YOUNG_THRESHOLD


def test_settle_heap_freezes_start_up_objects_and_still_collects_cycles_made_later() -> None:
    # In a child process: gc.freeze and the thresholds are process-wide.
    script = textwrap.dedent(
        """
        import gc, weakref
        from sd_common.cli import settle_heap

        tracked = len(gc.get_objects())
        settle_heap()
        print(gc.get_freeze_count() >= tracked // 2, len(gc.get_objects()) < tracked // 10)
        print(gc.get_threshold()[0])

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        keep = [[] for _ in range(gc.get_threshold()[0] + 1)]  # young objects past the threshold
        print(gone() is None)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split("\n")
    assert out[0] == "True True"  # start-up objects frozen, out of the collector's sight
    assert int(out[1]) == GC_YOUNG_THRESHOLD
    assert out[2] == "True"  # a cycle made afterwards is still collected, without gc.collect()


def test_an_old_python_is_named_in_one_line_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sd_common import cli

    monkeypatch.setattr(cli.sys, "version_info", (3, 10, 12, "final", 0))
    monkeypatch.setattr(cli.platform, "python_version", lambda: "3.10.12")
    with pytest.raises(SystemExit) as stopped:
        cli.check_python()
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Python 3.10.12 is too old" in err and "3.11 or newer" in err and "winget" in err


def test_the_running_python_passes_the_version_check() -> None:
    from sd_common.cli import check_python

    check_python()
