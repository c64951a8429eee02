"""Python client of a Sistema Distribuido coordinator (`sd-submit` is built on it)."""

from sd_client.client import Client, FileAnswer, Job, SdError, Task

__all__ = ["Client", "FileAnswer", "Job", "SdError", "Task"]
