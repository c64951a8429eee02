"""The zip of a job's results streams from a real coordinator, and past ZIP_DOWNLOADS_MAX at
once the next download gets a clear 503 (a slot comes back when a download ends)."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest

from support.cluster import Cluster
from support.images import sample_image

pytestmark = pytest.mark.e2e


def test_zip_downloads_stream_and_past_the_bound_get_503(embedded_cluster: Cluster) -> None:
    embedded_cluster.start_coordinator(ZIP_DOWNLOADS_MAX="1")
    # 120 noisy 640×480 results of ~0.3 MB each: far more than the socket buffers hold.
    sent = embedded_cluster.upload([("ruido.png", sample_image(640, 480, fmt="PNG"))], copies=120)
    job = embedded_cluster.wait_job(sent["job_id"])
    assert job["state"] == "done"
    url = f"/jobs/{sent['job_id']}/zip"
    with embedded_cluster.client(60) as client:
        with client.stream("GET", url) as first:
            assert first.status_code == 200
            chunks = first.iter_bytes()
            head = next(chunks)
            assert head.startswith(b"PK\x03\x04")  # the archive starts before it is all read
            refused = client.get(url)
            assert refused.status_code == 503
            assert refused.json()["detail"] == (
                "1 zip downloads are running, the most at once (ZIP_DOWNLOADS_MAX=1); try again "
                "in a moment"
            )
            whole = head + b"".join(chunks)
        archive = zipfile.ZipFile(io.BytesIO(whole))
        assert archive.testzip() is None and len(archive.namelist()) == 120
        again = client.get(url)  # the slot came back when the first download ended
        assert again.status_code == 200 and again.content == whole
    with httpx.Client(base_url=embedded_cluster.url) as plain:
        assert plain.get(f"/jobs/{sent['job_id']}/zip").status_code == 200
