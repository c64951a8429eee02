"""User API: submitting image jobs and custom tasks, and following jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from sd_common.pipeline import catalog
from sd_common.tasks import IMAGE_TASK, task_types
from sd_coordinator.api.deps import ServicesDep, UserRoute
from sd_coordinator.errors import NotFound
from sd_coordinator.submit import Upload

router = APIRouter(route_class=UserRoute, tags=["jobs"])


class Sent(BaseModel):
    """Answer to a submission: the job and how many tasks were queued."""

    status: str = "sent"
    job_id: str
    tasks: int


class TaskRequest(BaseModel):
    """A custom task: a registered type, its payload, and how many copies to run."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64, examples=["sleep"])
    payload: dict[str, Any] = Field(default_factory=dict, examples=[{"seconds": 1}])
    copies: int = Field(1, ge=1, le=1000)


def _clean_name(filename: str | None) -> str:
    name = (filename or "image").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in name if c.isprintable())[:200] or "image"


@router.post("/upload", status_code=202, response_model=Sent)
async def upload(
    services: ServicesDep,
    file: Annotated[list[UploadFile], File(description="one or more images")],
    ops: Annotated[str, Form(max_length=500, examples=["grayscale,blur:2"])] = "grayscale",
    copies: Annotated[int, Form(ge=1, le=1000)] = 1,
) -> dict[str, Any]:
    """Queue image tasks: each file × copies, through the `ops` pipeline."""
    uploads = [Upload(_clean_name(f.filename), await f.read()) for f in file]
    return await services.submitter.submit_images(uploads, ops, copies)


@router.post("/task", status_code=202, response_model=Sent)
async def submit_task(request: TaskRequest, services: ServicesDep) -> dict[str, Any]:
    """Queue a custom task of a registered type (GET /task-types lists them)."""
    return await services.submitter.submit_task(request.type, request.payload, request.copies)


@router.get("/jobs")
async def list_jobs(services: ServicesDep, limit: int = 100) -> list[dict[str, Any]]:
    """Job summaries, newest first."""
    return await services.store.list_jobs(max(1, min(limit, 1000)))


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, services: ServicesDep) -> dict[str, Any]:
    """One job with every task's state, worker, result, output and error."""
    job = await services.store.get_job(job_id)
    if job is None:
        raise NotFound(f"unknown job {job_id}")
    return job


@router.get("/ops")
async def list_ops() -> list[dict[str, Any]]:
    """The image operations an `ops` pipeline may use, with their arguments."""
    return catalog()


@router.get("/task-types")
async def list_task_types() -> list[dict[str, Any]]:
    """Custom task types POST /task accepts, with their payload schema."""
    return [
        {"type": t.name, "description": t.description.strip(), "cpu": t.cpu,
         "payload": t.payload.model_json_schema()}
        for t in task_types().values() if t.name != IMAGE_TASK
    ]  # fmt: skip
