"""What both command-line programs share: settings with one-line errors, logging."""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

from pydantic import ValidationError

from sd_common.settings import Settings


def fail(message: str) -> NoReturn:
    """Stop the program with one clear line on stderr."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env, CLI flags (non-None) on top; bad values fail."""
    try:
        base = Settings()
        flags = {k: v for k, v in overrides.items() if v is not None}
        return Settings.model_validate({**base.model_dump(), **flags}) if flags else base
    except ValidationError as exc:
        problems = "; ".join(
            f"{str(e['loc'][0]).upper() if e['loc'] else 'setting'}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        fail(f"invalid setting: {problems} (see .env.example)")


def setup_logging(verbose: bool = False) -> None:
    """Plain, greppable log lines on stderr."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
