"""`sd-submit` as a process: real folders of distinct images through a real coordinator."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

from support.cluster import Cluster, console_script
from support.images import decode, same_pixels, sample_image

pytestmark = pytest.mark.e2e


def sd_submit(
    cluster: Cluster,
    *args: str,
    token: str | None = None,
    timeout_s: float = 300,
    coordinator: str | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [console_script("sd-submit"), *args, "--coordinator", coordinator or cluster.url]
    if token is not None:
        command += ["--token", token]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "API_TOKEN": ""},
    )


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return dict(json.loads(result.stdout))


def photos(folder: Path, count: int, size: tuple[int, int] = (160, 120)) -> dict[str, bytes]:
    made = {}
    for i in range(count):
        data = sample_image(*size, seed=i)
        path = folder / f"day{i % 3}" / f"p{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made[path.relative_to(folder.parent).as_posix()] = data
    return made


def test_a_folder_with_bad_files_gives_results_for_the_good_ones_and_a_table_of_the_rest(
    embedded_cluster: Cluster, tmp_path: Path
) -> None:
    embedded_cluster.start_coordinator()
    trip = tmp_path / "trip"
    good = photos(trip, 6)
    odd = trip / "día 1 'α' \"b\".jpg"
    odd.write_bytes(sample_image(seed=40))
    (trip / "notes.txt").write_text("not an image")
    (trip / "empty.jpg").write_bytes(b"")
    (trip / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (trip / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    out = tmp_path / "out"

    result = sd_submit(
        embedded_cluster,
        str(trip),
        "--recursive",
        "--out",
        str(out),
        "--ops",
        "grayscale",
        "--json",
        token=embedded_cluster.token,
    )

    assert result.returncode == 1, result.stderr
    report = summary(result)
    failed = {Path(f["file"]).name: f["reason"] for f in report["failed"]}
    assert failed == {
        "empty.jpg": "empty file",
        "gone.jpg": "unreadable: No such file or directory",
        "corrupt.png": failed["corrupt.png"],
    }
    assert failed["corrupt.png"].startswith("rejected: ")
    assert [Path(s["path"]).name for s in report["skipped"]] == ["notes.txt"]
    assert report["written"] == 7
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = sorted(
        [n.removesuffix(".jpg") + ".png" for n in good] + ["trip/día 1 'α' \"b\".png"]
    )
    assert written == expected  # nothing else: no partial files, no state file left
    for name, data in [*good.items(), ("trip/" + odd.name, odd.read_bytes())]:
        result_image = Image.open(out / (name.removesuffix(".jpg") + ".png"))
        assert same_pixels(result_image, ImageOps.grayscale(decode(data)))
    # Without --json: the same failures as a table on stderr.
    again = sd_submit(
        embedded_cluster, str(trip), "-r", "--out", str(out), token=embedded_cluster.token
    )
    assert again.returncode == 1
    assert "empty.jpg" in again.stderr and "file" in again.stderr and "reason" in again.stderr
    assert "0 result(s) written" in again.stderr and "7 already there" in again.stderr


def test_an_interrupted_run_resumes_without_sending_or_downloading_anything_twice(
    embedded_cluster: Cluster, tmp_path: Path
) -> None:
    embedded_cluster.start_coordinator()
    trip = tmp_path / "trip"
    made = photos(trip, 120, size=(640, 480))
    out = tmp_path / "out"
    command = [
        console_script("sd-submit"),
        str(trip),
        "-r",
        "--out",
        str(out),
        "--ops",
        "blur:6,grayscale",
        "--parallel",
        "1",
        "--coordinator",
        embedded_cluster.url,
        "--token",
        embedded_cluster.token,
        "--json",
    ]
    # Ctrl-C in a terminal: SIGINT at its default, even when this suite was started in the
    # background (a shell without job control starts background commands with it ignored,
    # and a child inherits that).
    first = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list(out.rglob("*.png")):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    interrupted = json.loads(stdout)
    kept = {p for p in out.rglob("*.png")}
    assert 0 < len(kept) < 120

    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    resumed = json.loads(second.stdout)
    assert resumed["job_id"] == interrupted["job_id"]  # the open job was continued
    assert resumed["already_done"] == len(kept)
    assert resumed["written"] == 120 - len(kept)  # the missing ones only
    with embedded_cluster.client() as client:
        job = client.get(f"/jobs/{resumed['job_id']}", params={"limit": 0}).json()
    assert job["total"] == 120 and job["state"] == "done"  # no file was sent twice
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(
        n.removesuffix(".jpg") + ".png" for n in made
    )
    third = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert json.loads(third.stdout)["sent"] == 0 and third.returncode == 0


def test_sd_submit_needs_the_api_token_when_the_coordinator_has_one(
    tmp_path: Path, embedded_cluster: Cluster
) -> None:
    embedded_cluster.start_coordinator(API_TOKEN="user-secret")
    folder = tmp_path / "in"
    photos(folder, 2)
    refused = sd_submit(embedded_cluster, str(folder), "-r", "--out", str(tmp_path / "o1"))
    assert refused.returncode == 2
    assert "answered 401: this API needs a token" in refused.stderr
    done = sd_submit(
        embedded_cluster, str(folder), "-r", "--out", str(tmp_path / "o2"), token="user-secret"
    )
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "o2").rglob("*.png"))) == 2


def test_sd_submit_works_against_rabbitmq_with_two_workers(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("alfa")
    cluster.start_worker("beta", SHARED_STORAGE="off")
    folder = tmp_path / "shots"
    made = photos(folder, 30)
    out = tmp_path / "out"
    ops = "grayscale,thumbnail:64"
    result = sd_submit(
        cluster,
        str(folder),
        "-r",
        "--out",
        str(out),
        "--ops",
        ops,
        "--copies",
        "2",
        "--json",
        token=cluster.token,
    )
    assert result.returncode == 0, result.stderr
    assert summary(result)["written"] == 60
    for name, data in made.items():
        reference = ImageOps.grayscale(decode(data))
        reference.thumbnail((64, 64))
        stem = name.removesuffix(".jpg")
        for copy_name in (f"{stem}.png", f"{stem}-2.png"):
            assert same_pixels(Image.open(out / copy_name), reference)
    with cluster.client() as client:
        tasks = client.get(f"/jobs/{summary(result)['job_id']}/tasks").json()["tasks"]
    assert {t["worker"] for t in tasks} == {"alfa", "beta"}


def test_an_out_that_is_a_file_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    photos(folder, 1)
    (tmp_path / "out").write_text("a file")
    result = subprocess.run(
        [console_script("sd-submit"), str(folder), "-r", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "API_TOKEN": "", "COORDINATOR_PORT": "1"},  # nothing to reach
    )
    assert result.returncode == 2, result.stderr
    assert f"--out {tmp_path / 'out'} is a file, not a folder" in result.stderr
    assert "cannot reach" not in result.stderr


def test_a_coordinator_given_as_host_and_port_is_reached_over_http(
    tmp_path: Path, embedded_cluster: Cluster
) -> None:
    embedded_cluster.start_coordinator()
    folder = tmp_path / "in"
    photos(folder, 1)
    bare = embedded_cluster.url.removeprefix("http://")
    result = sd_submit(
        embedded_cluster, str(folder), "-r", "--out", str(tmp_path / "o"), coordinator=bare
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "o").rglob("*.png"))) == 1


def test_a_folder_whose_photos_are_in_subfolders_says_to_use_r(
    tmp_path: Path, embedded_cluster: Cluster
) -> None:
    embedded_cluster.start_coordinator()
    photos(tmp_path / "trip", 2)  # trip/day0/..., trip/day1/...: nothing at the top
    result = sd_submit(embedded_cluster, str(tmp_path / "trip"), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert "2 subfolder(s) not walked (use -r)" in result.stderr, result.stderr
    assert f"no image files in {tmp_path / 'trip'}: nothing was sent" in result.stderr


def test_a_full_coordinator_disk_is_a_clear_507_and_a_second_run_after_freeing_space_loses_nothing(
    tmp_path: Path, embedded_cluster: Cluster, small_disk: Path
) -> None:
    embedded_cluster.start_coordinator(DATA_DIR=str(small_disk))
    made = photos(tmp_path / "big", 30, size=(800, 600))  # ~180 KB each: more than 3 MB
    out = tmp_path / "out"
    full = sd_submit(embedded_cluster, str(tmp_path / "big"), "-r", "--out", str(out))
    assert full.returncode == 2, full.stderr
    assert "answered 507: the coordinator's disk is full" in full.stderr, full.stderr
    with embedded_cluster.client() as client:
        assert client.get("/health").status_code == 200

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    done = sd_submit(embedded_cluster, str(tmp_path / "big"), "-r", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(
        n.removesuffix(".jpg") + ".png" for n in made
    )
    name, data = next(iter(made.items()))
    expected = ImageOps.grayscale(Image.open(io.BytesIO(data)))
    result = (out / name).with_suffix(".png")
    assert same_pixels(decode(result.read_bytes()), expected)
    log = embedded_cluster.logs["coordinator"].read_text()
    assert "Traceback" not in log, log[-3000:]
