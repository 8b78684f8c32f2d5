"""The web page's server, through HTTP (Flask's test client): uploads, refusals, downloads, the queue, restarts;
and the live run underneath it: spans as they happen, and e's holes after a kill."""

import io
import json
import socket
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from approaches import __version__
from approaches.core.config import RunConfig, cores_present
from approaches.core.images import ImageSource, load_image
from approaches.core.kernel import blur
from approaches.core.settings import Settings
from approaches.harness.live import LiveRun, NotNow
from approaches.registry import APPROACHES
from approaches.web import serve
from approaches.web.app import create_app
from approaches.web.jobs import ID, JobStore, Limits, WebJob
from tests.conftest import photo
from visualize.documents import SCHEMA_VERSION

pytestmark = pytest.mark.timeout(60)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path: Path):
    jobs = JobStore(tmp_path / "web", Limits(file_bytes=1 << 20, request_bytes=3 << 20, pixels=1_000_000))
    yield jobs
    jobs.close()


@pytest.fixture
def client(store: JobStore):
    return create_app(store).test_client()


def upload(client, files: list[tuple[bytes, str]], **form: str):
    data = {"approach": "b.threads", "workers": "2", "tile_size": "32", "kernel_size": "5", **form,
            "images": [(io.BytesIO(content), name) for content, name in files]}
    return client.post("/jobs", data=data)


def finished(store: JobStore, job_id: str) -> WebJob:
    job = store.get(job_id)
    while job.state in ("queued", "running"):
        time.sleep(0.02)
    return job


def test_two_uploaded_images_are_blurred_to_a_s_pixels_and_offered_as_downloads(client, store):
    pictures = [photo(40, 50, 3, seed=1), photo(30, 20, 4, seed=2)]
    response = upload(client, [(png(pictures[0]), "one.png"), (png(pictures[1]), "../../two.png")])
    assert response.status_code == 201, response.json
    job = finished(store, response.json["id"])
    assert job.state == "done", job.message
    for index, pixels in enumerate(pictures):
        served = client.get(f"/jobs/{job.id}/output/{index}")
        assert served.status_code == 200
        got = np.asarray(Image.open(io.BytesIO(served.data)))
        assert np.array_equal(got.reshape(pixels.shape), blur(pixels, 5))
    assert job.images[1]["name"] == "02_two" and job.images[1]["shown"] == "../../two.png"
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/jobs/{job.id}/files/outputs.zip").data))
    assert sorted(archive.namelist()) == ["01_one_blurred.png", "02_two_blurred.png"]
    results = json.loads(client.get(f"/jobs/{job.id}/files/results.json").data)
    assert results["results"][0]["identical_to_a"] is True
    # the same document run_all.py --json writes: headed by its schema and provenance, so --compare reads it
    assert results["schema_version"] == SCHEMA_VERSION and results["provenance"]["suite"] == __version__
    assert any(name.startswith("charts/timeline") for name in job.files)


def test_the_event_stream_replays_a_finished_job_s_spans_and_ends(client, store):
    job = finished(store, upload(client, [(png(photo(40, 40, 3)), "x.png")]).json["id"])
    body = client.get(f"/jobs/{job.id}/events").get_data(as_text=True)
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    blurred = {event["tile"] for event in events if event["type"] == "span" and event["stage"] == "blur"}
    assert blurred == {0, 1, 2, 3}  # 40x40 in 32-pixel tiles
    assert events[-1] == {"type": "state", "state": "done", "message": job.message}
    resumed = client.get(f"/jobs/{job.id}/events", headers={"Last-Event-ID": str(len(events) - 1)})
    assert resumed.get_data(as_text=True).count("data: ") == 1


@pytest.mark.parametrize(("content", "name", "says"), [
    (b"GIF89a but not really", "fake.gif", "fake.gif: not an image"),
    (b"hello", "notes.txt", "notes.txt: not an image"),
    (png(photo(40, 40, 3))[:200], "cut.png", "cut.png: truncated or corrupt"),
])
def test_a_file_that_is_not_a_whole_image_is_refused_with_its_name(client, store, content, name, says):
    response = upload(client, [(png(photo(10, 10, 3)), "good.png"), (content, name)])
    assert response.status_code == 400 and says in response.json["error"]
    assert [p for p in store.root.iterdir() if p.is_dir()] == []  # nothing of the refused job is kept


def test_a_decompression_bomb_is_refused_from_its_header_before_decoding(client):
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")  # a few kilobytes that decode to 400 megapixels
    assert len(bomb.getvalue()) < 200_000
    response = upload(client, [(bomb.getvalue(), "bomb.png")])
    assert response.status_code == 413 and "decompression bomb" in response.json["error"]


def test_files_over_the_limits_are_refused_per_file_and_per_request(client):
    big = np.random.default_rng(0).integers(0, 256, (620, 620, 3), dtype=np.uint8)  # ~1.1 MB as PNG
    response = upload(client, [(png(big), "big.png")])
    assert response.status_code == 413 and "big.png: over 1 MB per file" in response.json["error"]
    response = upload(client, [(b"x" * (4 << 20), "huge.png")])
    assert response.status_code == 413 and "over 3 MB in all" in response.json["error"]


@pytest.mark.parametrize(("field", "value", "says"), [
    ("broker", "redis://elsewhere:6379/0", "broker must be one of"),
    ("kernel_size", "4", "odd"),
    ("approach", "z", "approach must be one of"),
    ("workers", "lots", "workers must be a whole number"),
    ("workers", "0", f"workers must be between 1 and {8 * cores_present()}"),  # the bound run_all.py has
])
def test_options_the_page_cannot_offer_are_refused(client, field, value, says):
    response = upload(client, [(png(photo(10, 10, 3)), "x.png")], **{field: value})
    assert response.status_code == 400 and says in response.json["error"]


def test_downloads_never_leave_the_job_s_own_folder(client, store):
    (store.root / "secret.txt").write_text("not yours")
    job = finished(store, upload(client, [(png(photo(20, 20, 3)), "x.png")]).json["id"])
    other = finished(store, upload(client, [(png(photo(20, 20, 3)), "y.png")]).json["id"])
    (job.folder / "inputs" / "mine.txt").write_text("not listed")
    for path in (f"/jobs/{job.id}/files/../secret.txt", f"/jobs/{job.id}/files/..%2F..%2Fsecret.txt",
                 f"/jobs/{job.id}/files/%2e%2e/%2e%2e/secret.txt", f"/jobs/{job.id}/files//etc/passwd",
                 f"/jobs/{job.id}/files/status.json", f"/jobs/{job.id}/files/inputs/mine.txt",
                 f"/jobs/{job.id}/files/../{other.id}/results.json", f"/jobs/..%2F{job.id}/files/results.json",
                 f"/jobs/{job.id[:-1]}/files/results.json", f"/jobs/{job.id}/output/-1", f"/jobs/{job.id}/output/9",
                 f"/jobs/{job.id}/preview/../../secret.txt"):
        response = client.get(path, follow_redirects=True)  # werkzeug merges // with a redirect first
        assert response.status_code == 404, path
        assert b"not yours" not in response.data and b"not listed" not in response.data


def test_job_ids_are_128_random_bits_and_each_upload_is_a_job_of_its_own(client, store):
    ids = {upload(client, [(png(photo(10, 10, 3)), "x.png")]).json["id"] for _ in range(3)}
    assert len(ids) == 3 and all(ID.fullmatch(job_id) for job_id in ids)
    assert store.get("../" + next(iter(ids))) is None


def test_at_most_the_limit_of_jobs_run_and_the_rest_wait_told_their_place(tmp_path, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(JobStore, "_run", lambda self, job: release.wait(10))
    store = JobStore(tmp_path / "web", Limits(running=1))
    client = create_app(store).test_client()
    ids = [upload(client, [(png(photo(10, 10, 3)), "x.png")]).json["id"] for _ in range(3)]
    while store.queue()["running"] < 1:
        time.sleep(0.01)
    assert [store.get(job_id).state for job_id in ids] == ["running", "queued", "queued"]
    assert client.get("/queue").json == {"running": 1, "queued": 2, "limit": 1}
    assert store.get(ids[2]).events._events[-1] == {"type": "state", "state": "queued", "position": 2}
    release.set()
    store.close()


def test_a_server_stopped_mid_job_marks_it_interrupted_and_offers_nothing_of_it(client, store):
    job = finished(store, upload(client, [(png(photo(20, 20, 3)), "x.png")]).json["id"])
    status = json.loads((job.folder / "status.json").read_text())
    (job.folder / "status.json").write_text(json.dumps({**status, "state": "running", "files": []}))
    (job.folder / "out" / "b.threads" / ".01_x_blurred.png.1.partial").write_bytes(b"half")
    restarted = JobStore(store.root)
    again = restarted.get(job.id)
    assert again.state == "interrupted" and "server stopped" in again.message
    assert restarted.output(again, 0) is None and restarted.file(again, "results.json") is None
    assert not list(job.folder.rglob("*.partial"))
    restarted.close()


def test_old_jobs_are_removed_and_serve_clean_removes_every_finished_one(client, store, capsys):
    job = finished(store, upload(client, [(png(photo(20, 20, 3)), "x.png")]).json["id"])
    assert store.clean() == 0 and job.folder.exists()  # younger than keep_s
    store.close()
    assert serve.main(["--clean", "--data", str(store.root)]) == 0
    assert "removed 1 finished jobs" in capsys.readouterr().out and not job.folder.exists()


@pytest.mark.parametrize("mistake,says", [
    (["--data", "{file}"], "cannot keep jobs in"),  # a file where the jobs' folder should be
    (["--clean", "--data", "{file}/jobs"], "cannot keep jobs in"),
    (["--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["--port", "99999"], "--port must be between 0 and 65535, got 99999"),
    (["--keep-hours", "-1"], "--keep-hours must be at least 0, got -1"),
    (["--host", "nohost.invalid", "--port", "0"], "cannot listen on nohost.invalid:0"),
    (["--port", "{busy}"], "cannot listen on 127.0.0.1:"),
])
def test_a_serve_mistake_is_one_line_and_status_2(tmp_path, capsys, mistake, says):
    # Before: a file as --data, or a host that does not resolve, ended in a traceback or werkzeug's own lines
    (tmp_path / "file").write_text("not a folder")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        argv = [arg.format(file=tmp_path / "file", busy=busy.getsockname()[1]) for arg in mistake]
        assert serve.main([*argv, *(() if "--data" in argv else ("--data", str(tmp_path / "jobs")))]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err


def test_killing_a_worker_is_refused_for_an_approach_without_pods(client, store):
    job = upload(client, [(png(photo(20, 20, 3)), "x.png")], approach="a").json
    response = client.post(f"/jobs/{job['id']}/kill", json={"scenario": "one-worker"})
    assert response.status_code == 409 and job["killable"] is False


# --- the live run underneath ---------------------------------------------------------------------------


def killed_run(letter: str, tmp_path: Path, image_dir: Path, amqp: str | None = None) -> tuple[list[dict], LiveRun]:
    """Run letter on memory:// with slow workers, kill one once tiles are in flight; the events and the run.
    amqp: j's RabbitMQ."""
    settings = Settings(tile_delay_s=0.02, result_wait_s=1.0, progress_wait_s=1.0, poll_s=0.01, visibility_s=0.3,
                        stop_grace_s=1.0)
    config = RunConfig(approaches=(letter,), output_dir=tmp_path / "out", workers=2, tile_size=16, kernel_size=5,
                       broker="memory://", amqp=amqp, settings=settings)
    sources = [ImageSource(image_dir / "one.png", "one")]
    events: list[dict] = []

    def kill_when_launched() -> None:
        while True:
            try:
                live.kill("one-worker")
                return
            except NotNow:
                time.sleep(0.01)

    live = LiveRun(APPROACHES[letter], config, sources, events.append)
    threading.Thread(target=kill_when_launched, daemon=True).start()
    live.run()
    return events, live


def test_under_e_a_killed_worker_s_tiles_stay_holes_and_the_stream_says_which(tmp_path, image_dir):
    events, live = killed_run("e", tmp_path, image_dir)
    report = live.cluster.reports["one"]
    holes = [event for event in events if event["type"] == "holes"]
    assert report.missing > 0 and holes == [{"type": "holes", "image": "one", "tiles": holes[0]["tiles"],
                                             "missing": report.missing}]
    back = {e["tile"] for e in events if e["type"] == "span" and e["stage"] == "assemble" and e["tile"] is not None}
    assert len(holes[0]["tiles"]) == report.missing and not back & set(holes[0]["tiles"])
    assert any(event["type"] == "say" and "killing worker-1" in event["text"] for event in events)


@pytest.mark.parametrize("letter", ["f", "g"])
def test_under_f_and_g_a_killed_worker_s_tiles_come_back(tmp_path, image_dir, letter):
    assert_killed_worker_s_tiles_come_back(tmp_path, image_dir, letter)


def assert_killed_worker_s_tiles_come_back(tmp_path: Path, image_dir: Path, letter: str, amqp: str | None = None):
    events, live = killed_run(letter, tmp_path, image_dir, amqp)
    back = {e["tile"] for e in events if e["type"] == "stored" or (e["type"] == "span" and e["stage"] == "send"
            and e["lane"].startswith("worker"))}  # live: spans of thread pods, the board's stored tiles
    assert back == set(range(live.cluster.reports["one"].expected))
    assert live.cluster.reports["one"].missing == 0 and not [e for e in events if e["type"] == "holes"]
    assert any(event["type"] == "say" and "killing worker-1" in event["text"] for event in events)
    expected = blur(load_image(image_dir / "one.png").pixels, 5)
    assert np.array_equal(load_image(tmp_path / "out" / letter / "one_blurred.png").pixels, expected)


def test_the_command_line_starts_the_page_as_serve_or_with_the_serve_flag(tmp_path, capsys):
    from approaches.harness.cli import run_as_script

    for argv in (["serve", "--clean", "--data", str(tmp_path)], ["--serve", "--clean", "--data", str(tmp_path)],
                 ["web", "--clean", "--data", str(tmp_path)]):
        with pytest.raises(SystemExit) as ended:
            run_as_script(argv)
        assert ended.value.code == 0 and "removed 0 finished jobs" in capsys.readouterr().out


@pytest.mark.slow
def test_under_h_a_killed_dask_worker_s_tiles_are_computed_again(tmp_path, image_dir):
    events, live = killed_run("h", tmp_path, image_dir)
    assert live.faults is not None and live.faults.victims
    assert any(event["type"] == "say" and "SIGKILL" in event["text"] for event in events)
    expected = blur(load_image(image_dir / "one.png").pixels, 5)
    assert np.array_equal(load_image(tmp_path / "out" / "h" / "one_blurred.png").pixels, expected)
