"""Top-level functions for pool tests: importable by name in a pool process."""

from __future__ import annotations

import os
import signal
import time


def square(x: int) -> int:
    return x * x


def slow_square(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x * x


def fail(message: str) -> None:
    raise ValueError(message)


def die() -> None:
    """Exit at once, as a segfaulting C extension would."""
    os._exit(3)


def shot_after(seconds: float) -> int:
    """Be killed from outside (the OOM killer) while running: innocent, so it may succeed
    when run again; the second run finds the marker and returns."""
    marker = f"/tmp/sd-pool-test-shot-{os.getppid()}"
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(seconds)
        os.kill(os.getpid(), signal.SIGKILL)
    os.unlink(marker)
    return 42


def pid() -> int:
    return os.getpid()


def slow_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def echo(data: bytes) -> bytes:
    return data


class PickyError(Exception):
    """An exception whose constructor pickle cannot call again (two required arguments)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")


def fail_picky() -> None:
    raise PickyError(7, "odd")


def pillow_blocks_max() -> int:
    """How many freed image memory blocks Pillow keeps in this process."""
    from PIL import Image

    return int(Image.core.get_blocks_max())


def big_image(side: int) -> int:
    """Ask Pillow for a side×side RGB image (4 bytes a pixel) and return its width."""
    from PIL import Image

    return Image.new("RGB", (side, side)).width


def filled(size: int, seed: int) -> bytes:
    """`size` bytes made from `seed`: an answer larger than one read of the pipe, or small."""
    return bytes((seed + i) % 251 for i in range(256)) * (size // 256) + bytes(size % 256)
