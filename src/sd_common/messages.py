"""Wire models: the task message on RabbitMQ and the worker ↔ coordinator bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from sd_common.settings import NAME_PATTERN as NAME

MESSAGE_VERSION = 1
HEX64 = r"^[0-9a-f]{64}$"
ID = r"^[0-9a-f]{32}$"
HELD_MAX = 20_000


class InputRef(BaseModel):
    """A task input stored by the coordinator, fetched by the worker via GET /blobs/{sha256}."""

    model_config = ConfigDict(frozen=True)

    sha256: str = Field(pattern=HEX64)
    size: int = Field(ge=0)


class TaskMessage(BaseModel):
    """One task on the work queue: small, never the input's bytes. A message holds one, or
    several of one job (`TaskBatch`)."""

    model_config = ConfigDict(frozen=True)

    v: int = MESSAGE_VERSION
    task_id: str = Field(pattern=ID)
    job_id: str = Field(pattern=ID)
    type: str = Field(min_length=1, max_length=64)
    ops: str = Field("", max_length=500)
    input: InputRef | None = None
    params: dict[str, Any] = Field(default_factory=dict)


# Several tasks of one job in one message: a JSON array of task messages, `type` "batch".
BATCH_TYPE = "batch"
TASKS_PER_MESSAGE_MAX = 64
TaskBatch: TypeAdapter[list[TaskMessage]] = TypeAdapter(
    Annotated[list[TaskMessage], Field(min_length=1, max_length=TASKS_PER_MESSAGE_MAX)]
)


def is_batch(body: bytes) -> bool:
    """A message body that holds several tasks (a JSON array) rather than one (an object)."""
    return body[:1] == b"["


class WorkerHello(BaseModel):
    """Body of POST /register and POST /report (the seed's fields plus runtime state)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=NAME)
    session: str | None = Field(None, max_length=64)
    cpu: float = Field(0, ge=0, le=100)
    ram: float = Field(0, ge=0, le=100)
    net: float = Field(0, ge=0, le=1e6, description="network MB/s, in + out")
    ip: str = Field("", max_length=64)
    cpus: int = Field(1, ge=1, le=4096)
    status: Literal["free", "busy", "paused", "draining"] = "free"
    paused_for: list[Literal["cpu", "disk"]] = Field(
        default_factory=list,
        max_length=2,
        description="why it takes no tasks: cpu (above CPU_LIMIT), disk (its disk is full)",
    )
    task_id: str | None = Field(None, max_length=64)
    consumers: int = Field(0, ge=0, le=10_000)
    prefetch: int = Field(
        0, ge=0, le=100_000, description="tasks each consumer may hold (its messages' tasks)"
    )
    processed: int = Field(0, ge=0)
    failed: int = Field(0, ge=0)
    version: str | None = Field(
        None, max_length=64, description="the worker's package version (None: an older worker)"
    )
    os: str = Field("", max_length=80, description="the node's operating system, for its card")
    held: list[Annotated[str, Field(pattern=ID)]] = Field(
        default_factory=list,
        max_length=HELD_MAX,
        description="task ids of the deliveries this worker holds unacked, oldest first: the "
        "coordinator runs them elsewhere if this worker goes silent",
    )
    rtt_ms: float | None = Field(
        None, ge=0, le=600_000, description="round trip of this worker's previous report"
    )
    backup_queue: str | None = Field(
        None,
        max_length=255,
        description="this worker's own queue, where the coordinator sends it backup runs of "
        "a lagging worker's tasks while it idles (None: take them from the work queue)",
    )


class ReportAnswer(BaseModel):
    """The coordinator's answer to POST /report."""

    status: str = "ok"
    cancelled_jobs: list[str] = Field(
        default_factory=list, description="recently cancelled jobs, whose tasks the worker skips"
    )
    settled: list[str] = Field(
        default_factory=list,
        description="held tasks whose outcome is already stored (run elsewhere after this "
        "worker was lost or lagged): the worker acks them without running them",
    )
    others_consuming: dict[str, int] | None = Field(
        None,
        description="other workers consuming the queue (status free or busy): "
        "`workers` and their `cpus`; the worker's share counts them",
    )
    unfinished_tasks: int | None = Field(
        None,
        description="tasks of every job not yet finished, including the part still "
        "being published: the whole that the consuming workers share",
    )


class Working(BaseModel):
    """Body of POST /working: the worker's current task."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=NAME)
    session: str | None = Field(None, max_length=64)
    status: Literal["free", "busy", "paused", "draining"]
    task_id: str | None = Field(None, max_length=64)
    started: list[Annotated[str, Field(pattern=ID)]] = Field(
        default_factory=list,
        max_length=1000,
        description="tasks started since the previous update (marked running together)",
    )


class TaskOutcome(BaseModel):
    """A finished task as reported by a worker, except image bytes (sent raw after it in POST
    /results, or written by the worker into a DATA_DIR it shares with the coordinator: `result`)."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(pattern=ID)
    worker: str = Field(pattern=NAME)
    output: Any = None
    error: str | None = Field(None, max_length=4000)
    retry: bool = Field(
        False, description="the attempt failed transiently; the task stays queued for redelivery"
    )
    duration_s: float = Field(0, ge=0, le=86_400)
    result: str | None = Field(
        None,
        pattern=r"^\.incoming-[0-9a-f]{32}-[0-9a-f]{32}\.png$",
        description="`.incoming-<task_id>-<32 hex>.png`, which this worker wrote into the "
        "coordinator's DATA_DIR/results itself (shared storage); the coordinator checks it and "
        "makes it the task's result only if the task is not finished yet",
    )

    @model_validator(mode="after")
    def _result_is_own(self) -> TaskOutcome:
        if self.result is not None and (
            not self.result.startswith(f".incoming-{self.task_id}-") or self.error
        ):
            raise ValueError(
                "result must be `.incoming-<task_id>-<32 hex>.png` of a task that did not fail"
            )
        return self


class IngestAnswer(BaseModel):
    """The coordinator's answer to a result: the worker acks only after `stored`."""

    task_id: str
    stored: bool
    duplicate: bool = False


class IngestRefused(BaseModel):
    """The coordinator's answer to a result it refused: retrying it cannot help."""

    task_id: str
    error: str
    status: int = Field(description="the HTTP status the refusal alone would have had")


class IngestAnswers(BaseModel):
    """The answer to POST /results: one per outcome, in the order of the body."""

    answers: list[IngestAnswer | IngestRefused]
