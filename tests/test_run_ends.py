"""Every run ends, and saves what it says it saved: clashing names, crashes, signals, odd inputs, logs, absurd
settings, memory, passwords, unreachable brokers and failed images, each pinned by a test that failed before."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from approaches import f_reliable_queue
from approaches.cluster import assembly
from approaches.cluster.broker import BrokerError, check_reachable
from approaches.core.config import RunConfig
from approaches.core.errors import ConfigError, Crashed, ImageError
from approaches.core.images import find_images, load_image
from approaches.core.job import Job
from approaches.core.settings import Settings
from approaches.core.tasks import Assembly
from approaches.core.trace import Tracer
from approaches.harness.chaos import Tally, _document
from approaches.harness.measure import Measured, verify
from approaches.harness.results import Output, log_text, write_document
from approaches.registry import APPROACHES
from tests.conftest import ctrl_c_as_in_a_terminal, main, photo
from tests.test_b_tile_parallel import run_approach
from tests.test_e_naive_queue import make_job

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)


def run(tmp_path: Path, *args: str, env: dict | None = None) -> int:
    return main([*args, "--logs", str(tmp_path / "logs"), "--charts", str(tmp_path / "charts")], env=env or {})


# 1. Two inputs whose outputs would share a name


# A.png and a.png: A_png and a_png differ here, but are one file on a case-insensitive disk (macOS, Windows)
@pytest.mark.parametrize("names", [("x.png", "x.PNG"), ("a.png", "a.jpg", "a_png.bmp"), ("A.png", "a.png")])
def test_inputs_whose_outputs_would_share_a_name_are_refused_naming_both(tmp_path, capsys, names):
    # Before: x.png and x.PNG were both saved as x_png_blurred.png (c waited forever on its assembler)
    for name in names:
        Image.fromarray(photo(40, 40, 3)).save(tmp_path / name, format="PNG")
    with pytest.raises(ConfigError, match="would both be saved as"):
        find_images(tmp_path)
    assert run(tmp_path, "--approaches", "c", "--input", str(tmp_path), "--output", str(tmp_path / "out"),
               "--tile-size", "16") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "rename one" in err and not (tmp_path / "out").exists()


# 2. An unexpected exception in any thread or process ends the run with that error


def explode(self, result):
    raise KeyError("a bug in the assembler")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("key", ["b.threads", "b.shm", "c"])
def test_an_assembler_thread_that_crashes_ends_the_run_with_its_error(tmp_path, image_dir, monkeypatch, key):
    # Before: c's assembler thread died and every other stage waited for it forever
    monkeypatch.setattr(Assembly, "add", explode)
    with pytest.raises(KeyError, match="a bug in the assembler"):
        run_approach(key, image_dir, tmp_path / "out", tile_size=8)


@pytest.mark.timeout(30)
def test_a_pod_that_crashes_ends_the_run_with_its_error_within_seconds(tmp_path, image_dir, monkeypatch):
    # Before: f's workers waited for an assembler that was gone, for as long as the give-up timeout
    monkeypatch.setattr(assembly.StoredResultsAssembler, "step", lambda self, now: explode(self, None))
    started = time.monotonic()
    with pytest.raises(Crashed, match="assembler crashed: KeyError"):
        f_reliable_queue.run(make_job(image_dir, tmp_path / "out", letter="f", settings=Settings(progress_wait_s=600)),
                             Tracer())
    assert time.monotonic() - started < 15


def test_run_all_reports_a_crash_in_one_line_and_status_1(tmp_path, image_dir, monkeypatch, capsys):
    monkeypatch.setattr(Assembly, "add", explode)
    assert run(tmp_path, "--approaches", "c", "--input", str(image_dir), "--output", str(tmp_path / "out"),
               "--quiet") == 1
    err = capsys.readouterr().err
    assert err.strip() == "run_all.py: error: c crashed: KeyError: 'a bug in the assembler'"


# 3. SIGTERM and Ctrl-C


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum,status,word", [(signal.SIGTERM, 143, "terminated"),
                                               pytest.param(signal.SIGINT, 130, "interrupted", marks=pytest.mark.slow)])
def test_a_signal_ends_the_run_in_one_line_and_stops_the_server_and_every_pod(tmp_path, short_tmp, image_dir, signum,
                                                                              status, word):
    # Before: SIGTERM orphaned valkey-server and /tmp/blur-valkey-*; Ctrl-C printed a 28-line traceback
    scratch = short_tmp
    for i in range(6):
        Image.fromarray(photo(200, 300, 3, seed=i)).save(image_dir / f"big{i}.png")
    child = subprocess.Popen(
        [sys.executable, "run_all.py", "--approaches", "f", "--broker", "embedded://", "--input", str(image_dir),
         "--output", str(tmp_path / "out"), "--tile-size", "16", "--kernel-size", "31", "--kernel", "direct",
         "--logs", str(tmp_path / "logs"), "--no-charts", "--quiet"],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=ctrl_c_as_in_a_terminal)
    deadline = time.monotonic() + 60
    while not _pods_of(child.pid) and time.monotonic() < deadline:  # the server and the pods are up
        time.sleep(0.05)
    family = _pods_of(child.pid)
    assert family, "the run never started its server and pods"
    time.sleep(0.5)
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode == status
    assert err.strip().splitlines() == [f"run_all.py: {word}; everything it started is stopped"]
    deadline = time.monotonic() + 5  # multiprocessing's resource tracker leaves once its parent has
    while [pid for pid in family if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in family if _alive(pid)]
    assert list(scratch.iterdir()) == []  # the server's folder is gone


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ctrl_c_while_h_starts_its_dask_cluster_is_one_line_and_leaves_no_process(tmp_path, image_dir):
    # Before: dask's exit hook tried to close the half-started cluster and printed a 30-line AssertionError
    child = subprocess.Popen(
        [sys.executable, "run_all.py", "--approaches", "h", "--input", str(image_dir), "--output",
         str(tmp_path / "out"), "--logs", str(tmp_path / "logs"), "--no-charts", "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_as_in_a_terminal)
    deadline = time.monotonic() + 60
    while not _children(child.pid) and time.monotonic() < deadline:  # the first nanny: the cluster is starting
        time.sleep(0.01)
    family = _children(child.pid)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and err.strip().splitlines() == [
        "run_all.py: interrupted; everything it started is stopped"], err
    deadline = time.monotonic() + 5
    while [pid for pid in family if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert family and not [pid for pid in family if _alive(pid)]


def _children(parent: int) -> list[int]:
    path = Path(f"/proc/{parent}/task/{parent}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def _pods_of(parent: int) -> list[int]:
    """The processes parent started (the server and the pods), once there are at least three."""
    children = _children(parent)
    return children if len(children) >= 3 else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# 4. Inputs that are not image files, 16-bit images, names that are not text


@pytest.mark.timeout(30)
def test_a_fifo_a_device_and_a_folder_named_like_images_are_skipped_with_a_reason(tmp_path, image_dir):
    # Before: a FIFO named x.png made the run wait forever for a writer
    os.mkfifo(image_dir / "pipe.png")
    os.symlink("/dev/null", image_dir / "null.png")
    (image_dir / "folder.png").mkdir()
    outcome, _ = run_approach("b.threads", image_dir, tmp_path / "out")
    reasons = {Path(f.path).name: f.reason for f in outcome.failed}
    assert reasons == {"pipe.png": "is a FIFO, not an image file; skipped",
                       "null.png": "is a device, not an image file; skipped",
                       "folder.png": "is a directory, not an image file; skipped"}
    assert {s.name for s in outcome.saved} == {"one", "two", "three"}


@pytest.mark.parametrize("colour_type,channels", [(0, 1), (2, 3), (4, 2), (6, 4)])
def test_a_16_bit_png_is_refused_not_silently_cut_to_8_bits(tmp_path, colour_type, channels):
    # Before: Pillow decoded a 16-bit RGB PNG as 8-bit RGB and the suite blurred what was left
    path = tmp_path / "deep.png"
    path.write_bytes(_png16(5, 4, colour_type, channels))
    with pytest.raises(ImageError, match=r"16 bits per channel is not supported|mode I;16 is not supported"):
        load_image(path)


def _png16(width: int, height: int, colour_type: int, channels: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(range(width * 2 * channels)) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_names_that_are_not_text_are_reported_without_crashing_or_forging_log_lines(tmp_path, image_dir, capsys):
    # Before: a file name that was not UTF-8 crashed the report after all the work, leaving a 0-byte log
    bad_bytes = os.fsencode(image_dir) + b"/caf\xe9.png"
    Path(os.fsdecode(bad_bytes)).write_bytes(b"not an image")
    Image.fromarray(photo(20, 20, 3)).save(image_dir / "two\nlines.png", format="PNG")
    (image_dir / "forged\n=== a_Sequential Results ===.png").write_text("not an image either")
    status = run(tmp_path, "--approaches", "a", "--input", str(image_dir), "--output", str(tmp_path / "out"),
                 "--json", str(tmp_path / "r.json"), "--no-charts", "--quiet")
    assert status == 1
    log = next((tmp_path / "logs").glob("*.txt")).read_text()
    assert log.splitlines().count("=== a_Sequential Results ===") == 1 and "two_lines" in log
    assert "caf\\xe9.png" in log or "caf\\udce9.png" in log
    assert (tmp_path / "out" / "a" / "two_lines_blurred.png").exists()
    json.loads((tmp_path / "r.json").read_text())
    err = capsys.readouterr().err  # the two that are not images, in one line: they failed for one reason
    assert len(err.strip().splitlines()) == 1 and "\\n" in err and "caf" in err


# 5. Logs: never overwritten, never "written" unless written; unwritable places found first


def test_two_runs_in_the_same_second_keep_two_logs(tmp_path):
    out = Output(logs_dir=tmp_path / "logs", charts_dir=None, quiet=True)
    doc = {"config": {"timestamp": "2026-01-01 00:00:00"}, "results": []}
    for _ in range(2):
        assert write_document(out, doc, text=log_text(doc)) == []
    logs = tmp_path / "logs"
    assert len(list(logs.glob("*.txt"))) == len(list(logs.glob("*.trace.json"))) == 2
    assert len(list(logs.glob("*.json"))) == 4  # each run's results, and its timelines as a Chrome trace


@pytest.mark.parametrize("flag,place", [("--logs", "{blocker}/inside"), ("--charts", "{blocker}/inside"),
                                        ("--output", "{blocker}/inside"), ("--json", "{blocker}/inside"),
                                        ("--json", "/proc/r.json")])  # a folder nobody may create files in
def test_an_unwritable_place_is_found_before_any_work(tmp_path, image_dir, capsys, flag, place):
    # Before: --json into a folder that refuses new files (even to root) was found only after the run
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    args = {"--logs": str(tmp_path / "logs"), "--charts": str(tmp_path / "charts"), "--output": str(tmp_path / "out"),
            "--json": str(tmp_path / "r.json")}
    args[flag] = place.format(blocker=blocker)
    status = main(["--approaches", "a", "--input", str(image_dir), *(x for item in args.items() for x in item)],
                  env={})
    assert status == 2
    captured = capsys.readouterr()
    assert "written" not in captured.out and len(captured.err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*_blurred.png"))  # no work was done


# 6. Absurd settings


@pytest.mark.parametrize("args,message", [
    (["--workers", "1024"], "--workers must be between 1 and"),
    (["--approaches", "g", "--tile-size", "1"], "--tile-size must be at least 16 for the queue approaches"),
    (["--chaos", "e", "--tile-size", "8"], "--tile-size must be at least 16"),
])
def test_absurd_settings_are_refused_with_the_reason_before_any_work(tmp_path, image_dir, capsys, args, message):
    assert run(tmp_path, "--input", str(image_dir), "--output", str(tmp_path / "out"), *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# 7. Verification holds one reference image at a time; long silences are shown


def test_verification_memory_does_not_grow_with_the_number_of_images(tmp_path):
    # Before: every reference image was held until the end (200 images: 1.4 GB)
    def peak_for(count: int) -> int:
        folder = tmp_path / f"in{count}"
        folder.mkdir()
        for i in range(count):
            Image.fromarray(photo(300, 400, 3, seed=i)).save(folder / f"img{i}.png")
        config = RunConfig(input_dir=folder, output_dir=tmp_path / f"out{count}", kernel_size=3, workers=1)
        sources = find_images(folder)
        outcome = APPROACHES["a"].run(Job(config, tuple(sources), "a"), Tracer())
        # a's outputs under c's name: with no a in the run, each reference is blurred again (the heavier check)
        measured = Measured(APPROACHES["c"], [1.0], outcome, [], 0.0)
        tracemalloc.start()
        verify([measured], sources, config)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert measured.identical_to_a
        return peak

    # Holding every reference would add 20 images' worth; two threads at their peaks at once add at most a few
    image_bytes = 300 * 400 * 3
    assert peak_for(24) - peak_for(4) < 4 * image_bytes


# 8. A broker's password never appears anywhere


def test_the_chaos_document_never_holds_the_brokers_password():
    # Before: the chaos report wrote the broker URL as given, password and all
    config = RunConfig(broker="redis://user:hunter2@db.example:6379/0")
    doc = _document(config, ["f"], ["workers"], [Tally("workers", "f", 1, 4, 2, 0, 0, 0, 0)])
    text = json.dumps(doc)
    assert "hunter2" not in text and "redis://user:***@db.example:6379/0" in text


# 9. A broker that nothing answers


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "redis://no-such-host.invalid:6379/0"])
def test_an_unreachable_broker_fails_in_one_line_within_3_s(url):
    # Before: redis-py's connect timeout and retries made this wait 9.5-10 s in silence
    started = time.monotonic()
    with pytest.raises(BrokerError, match="cannot reach"):
        check_reachable(url)
    assert time.monotonic() - started < 3.0


# 10. Each failed image once, with its reason


def test_each_failed_image_is_listed_once_in_the_log_and_on_the_console(tmp_path, image_dir, capsys):
    # Before: the log left failed images out, and the console repeated them once per approach
    for name in ("empty.png", "junk.png"):
        (image_dir / name).write_bytes(b"" if name == "empty.png" else b"junk")
    status = run(tmp_path, "--approaches", "a,b.threads,c", "--input", str(image_dir), "--output",
                 str(tmp_path / "out"), "--kernel-size", "3", "--no-charts", "--quiet")
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(re.search(r"(empty|junk)\.png: (empty file|not an image)", line) for line in err)
    log = next((tmp_path / "logs").glob("*.txt")).read_text()
    failed = log.split("=== Failed inputs ===")[1]
    assert failed.count("empty.png") == 1 and failed.count("junk.png") == 1
