"""User API: submitting image jobs and custom tasks, and following jobs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from sd_common.pipeline import catalog
from sd_common.result_names import clean_name
from sd_common.tasks import IMAGE_TASK, task_types
from sd_coordinator.api.deps import ServicesDep, UserRoute
from sd_coordinator.api.file_parts import multipart_body, read_file_parts
from sd_coordinator.api.problems import problems
from sd_coordinator.errors import NotFound
from sd_coordinator.submit import MAX_FILES_PER_UPLOAD, Upload

router = APIRouter(route_class=UserRoute, tags=["jobs"])

# Parts besides a batch's files that a client may send (and that are skipped); past that, a
# body is refused before more of it is read.
EXTRA_PARTS = 10

TaskState = Literal["queued", "running", "done", "failed", "cancelled"]


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


@router.post(
    "/upload",
    status_code=202,
    response_model=Sent,
    responses=problems(400, 413, 422, 503, 507),
)
async def upload(
    services: ServicesDep,
    file: Annotated[list[UploadFile], File(description="one or more images")],
    ops: Annotated[str, Form(max_length=500, examples=["grayscale,blur:2"])] = "grayscale",
    copies: Annotated[int, Form(ge=1, le=1000)] = 1,
) -> dict[str, Any]:
    """Queue image tasks: each file × copies, through the `ops` pipeline."""
    uploads = [Upload(_clean_name(f.filename), await f.read()) for f in file]
    return await services.submitter.submit_images(uploads, ops, copies)


@router.post("/task", status_code=202, response_model=Sent, responses=problems(400, 422, 503, 507))
async def submit_task(request: TaskRequest, services: ServicesDep) -> dict[str, Any]:
    """Queue a custom task of a registered type (GET /task-types lists them)."""
    return await services.submitter.submit_task(request.type, request.payload, request.copies)


@router.get("/jobs")
async def list_jobs(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[
        str | None, Query(max_length=64, description="a job id: the page after it")
    ] = None,
) -> list[dict[str, Any]]:
    """Job summaries, newest first, a page at a time (`before`: the last job of a page)."""
    return [job.as_json() for job in await services.store.list_jobs(limit, before)]


class NewJob(BaseModel):
    """A job that receives its files in batches (`POST /jobs/{job_id}/files`), then is closed."""

    model_config = ConfigDict(extra="forbid")

    ops: str = Field("grayscale", max_length=500, examples=["grayscale,thumbnail:256"])
    copies: int = Field(1, ge=1, le=1000)
    name: str = Field("", max_length=200, examples=["trip"])


@router.post("/jobs", status_code=201, responses=problems(400, 422, 507))
async def create_job(request: NewJob, services: ServicesDep) -> dict[str, Any]:
    """Create an open job with its pipeline; send files with POST /jobs/{job_id}/files."""
    return await services.jobs.create(request.ops, request.copies, request.name)


@router.post(
    "/jobs/{job_id}/files",
    status_code=202,
    responses=problems(400, 404, 409, 413, 503, 507),
    openapi_extra=multipart_body(
        "file", "images; each part's filename is its name in the job, e.g. trip/day1/a.jpg"
    ),
)
async def add_files(job_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Add a batch of files to an open job: the valid ones are queued at once, the others
    listed with their reasons (`files`: one entry per file)."""
    parts = await read_file_parts(request, "file", MAX_FILES_PER_UPLOAD + EXTRA_PARTS)
    uploads = [Upload(clean_name(filename), data) for filename, data in parts]
    return await services.jobs.add_files(job_id, uploads)


@router.post("/jobs/{job_id}/close")
async def close_job(job_id: str, services: ServicesDep) -> dict[str, Any]:
    """No more files: the job is done once its tasks are."""
    return await services.jobs.close(job_id)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, services: ServicesDep) -> dict[str, Any]:
    """Cancel a job: queued tasks are not processed, results already made are kept."""
    return await services.jobs.cancel(job_id)


@router.get("/jobs/{job_id}")
async def get_job(
    job_id: str,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=0, le=10_000, description="tasks on the first page")] = 1000,
) -> dict[str, Any]:
    """A job's summary and the first page of its tasks (`tasks_next`: cursor of the next page
    for GET /jobs/{job_id}/tasks, or null)."""
    job = await services.store.get_job(job_id, limit)
    if job is None:
        raise NotFound(f"unknown job {job_id}")
    view = job.as_json()
    if job.summary.open:  # what a client sending more files needs to size its batches
        view["max_upload_bytes"] = services.settings.max_upload_bytes
        view["max_files"] = MAX_FILES_PER_UPLOAD
    return view


@router.get("/jobs/{job_id}/tasks")
async def job_tasks(
    job_id: str,
    services: ServicesDep,
    state: Annotated[TaskState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[int | None, Query(ge=0, description="`next` of the previous page")] = None,
    order: Annotated[
        Literal["seq", "finished"],
        Query(
            description="seq: task order; finished: finished tasks in the order they "
            "finished, `next` always set (poll with it for results as they come)"
        ),
    ] = "seq",
) -> dict[str, Any]:
    """A job's tasks, page by page: `{"tasks": [...], "next": cursor or null}`."""
    if await services.store.job_summary(job_id) is None:
        raise NotFound(f"unknown job {job_id}")
    page = await services.store.tasks_page(
        job_id, state=state, limit=limit, cursor=cursor, order=order
    )
    return page.as_json()


@router.get("/ops")
async def list_ops() -> list[dict[str, Any]]:
    """The image operations an `ops` pipeline may use, with their arguments."""
    return catalog()


@router.get("/task-types")
async def list_task_types() -> list[dict[str, Any]]:
    """Custom task types POST /task accepts, with their payload schema."""
    return [
        {
            "type": t.name,
            "description": t.description.strip(),
            "cpu": t.cpu,
            "payload": t.payload.model_json_schema(),
        }
        for t in task_types().values()
        if t.name != IMAGE_TASK
    ]
