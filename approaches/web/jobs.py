"""The server's jobs: uploads checked and stored, at most a few running at once, and every job's files.

A web page is a door anyone on the network can push bytes through, so everything a request brings is
checked before any work starts, and refused with one line the page can show:

- sizes: Flask refuses a request over Limits.request_bytes before reading it all (413); each file is
  measured as it is stored and refused over Limits.file_bytes;
- contents: each file must be an image Pillow reads whole (core.images.load_image: not a text file
  renamed .png, not truncated), with at most Limits.pixels pixels, read from its header before decoding,
  so a decompression bomb (a few kilobytes that decode to gigabytes) is refused before it costs anything;
- names: a file's name is shown on the page and nothing else; the file is stored as inputs/<n><suffix>,
  the suffix chosen from the format Pillow found, and its output name is made of the number and the
  name's plain letters (so no name can leave the job's folder, or collide with another);
- downloads: only files the job itself lists (outputs, zip, results, charts) are served, matched by name
  against that list, never joined onto a path first; job ids are 128 random bits (secrets), so one
  browser cannot guess another's job.

Jobs wait in a queue and Limits.running of them run at once (the suite's approaches already use every
core: more at once only share them); a queued job is told its place.  A job's state is written to
status.json (through a temporary file) at each change; a server stopped mid-job finds that job "queued"
or "running" when it starts again and marks it interrupted, and only a job that finished offers its
files, so a half-written output is never shown as done.  Jobs older than Limits.keep_s are removed.
"""

import contextlib
import json
import logging
import re
import secrets
import shutil
import threading
import time
import zipfile
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from approaches.core.config import MIN_QUEUE_TILE_SIZE, RunConfig, max_workers
from approaches.core.errors import BlurSuiteError, ImageError
from approaches.core.images import ImageSource, load_image, output_path
from approaches.core.tiling import plan_tiles
from approaches.harness.chaos import DEMO_SETTINGS
from approaches.harness.live import LiveRun, NotNow, killable
from approaches.harness.measure import document, verify
from approaches.harness.results import headed
from approaches.registry import APPROACHES
from approaches.web.events import EventLog

MB = 1 << 20
BROKERS = ("memory://", "embedded://")  # the page may choose only brokers the server starts itself
MAX_TILE_DELAY_MS = 1000
PREVIEW_PX = 640  # the page draws a preview this wide or tall at most, while tiles come back
ID = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16): 128 random bits
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
ACTIVE = ("queued", "running")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request, one file and the server as a whole may take (serve's flags set them)."""

    file_bytes: int = 50 * MB
    request_bytes: int = 200 * MB
    files: int = 32
    pixels: int = 40_000_000  # per image, read from its header: a bigger one is refused before decoding
    running: int = 4
    keep_s: float = 24 * 3600.0


class Refused(Exception):
    """Bad input, refused before any work: the one-line message goes back to the page."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Options:
    """What the page chose for a job."""

    approach: str = "b.threads"
    kernel_size: int = 21
    workers: int = 2
    tile_size: int = 256
    broker: str = "memory://"
    tile_delay_ms: int = 0  # each queue worker sleeps this long per tile: slow enough to kill one mid-job


@dataclass
class WebJob:
    """One job: its folder, what was asked, its images, its state and its live events."""

    id: str
    folder: Path
    options: Options
    images: list[dict[str, Any]]
    created: float
    state: str = "queued"
    message: str = ""
    files: list[str] = field(default_factory=list)  # what may be downloaded: names relative to folder
    finished: float | None = None
    events: EventLog = field(default_factory=EventLog)
    live: LiveRun | None = None

    def status(self) -> dict[str, Any]:
        """What status.json holds and GET /jobs/<id> answers."""
        approach = APPROACHES[self.options.approach]
        return {"id": self.id, "state": self.state, "message": self.message, "options": asdict(self.options),
                "title": approach.title, "lesson": approach.lesson, "killable": self.killable,
                "tiles": tile_view(self.options.approach),
                "images": self.images, "files": self.files, "created": self.created, "finished": self.finished}

    @property
    def killable(self) -> bool:
        return killable(self.options.approach)

    def output(self, index: int) -> Path:
        return output_path(self.folder / "out", self.options.approach, self.images[index]["name"])


def tile_view(letter: str) -> bool:
    """Whether the page draws the approach's tiles: those whose work the tile size changes (a and d blur whole
    images, i bands of rows, so those show each image as it is saved instead).

    >>> tile_view("a"), tile_view("b.threads"), tile_view("e"), tile_view("i")
    (False, True, True, False)
    """
    return "tile_size" in APPROACHES[letter].varies


def options_from(form: Mapping[str, str]) -> Options:
    """The page's form, checked: Refused with the field and the values allowed."""
    approach = form.get("approach", Options.approach)
    if approach not in APPROACHES:
        raise Refused(f"approach must be one of {', '.join(APPROACHES)}, got {approach!r}")
    broker = form.get("broker", Options.broker)
    if broker not in BROKERS:
        raise Refused(f"broker must be one of {', '.join(BROKERS)}, got {broker!r}")
    numbers = {}
    for name, low, high in (("kernel_size", 1, 255), ("workers", 1, max_workers()),
                            ("tile_size", MIN_QUEUE_TILE_SIZE, 4096),
                            ("tile_delay_ms", 0, MAX_TILE_DELAY_MS)):
        text = form.get(name, str(getattr(Options, name)))
        try:
            numbers[name] = int(text)
        except ValueError:
            raise Refused(f"{name} must be a whole number, got {text!r}") from None
        if not low <= numbers[name] <= high:
            raise Refused(f"{name} must be between {low} and {high}, got {numbers[name]}")
    options = Options(approach=approach, broker=broker, **numbers)
    try:
        _config(options, Path("."))  # RunConfig's own checks: odd kernel size, workers for the cores present
    except BlurSuiteError as error:
        raise Refused(str(error)) from None  # the setting in words: "kernel size must be odd ..."
    return options


def _config(options: Options, folder: Path) -> RunConfig:
    return RunConfig(approaches=(options.approach,), input_dir=folder / "inputs", output_dir=folder / "out",
                     kernel_size=options.kernel_size, tile_size=options.tile_size, workers=options.workers,
                     broker=options.broker,
                     # the chaos demo's patience: the page's kill button kills workers, and e then reports
                     # their images incomplete after DEMO_SETTINGS.result_wait_s without a result
                     settings=replace(DEMO_SETTINGS, tile_delay_s=options.tile_delay_ms / 1000))


def plain_stem(filename: str) -> str:
    """The plain letters of an uploaded file's name, for its output's name: never a path, never empty.

    >>> plain_stem("../../etc/passwd"), plain_stem("my photo (1).JPG"), plain_stem("..."), plain_stem("")
    ('passwd', 'my_photo_1', 'image', 'image')
    """
    base = re.split(r"[\\/]", filename)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    return re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_")[:40] or "image"


class JobStore:
    """Every job under root/<id>/, the queue, and the Limits.running threads that run jobs."""

    def __init__(self, root: Path, limits: Limits = Limits()) -> None:
        self.root, self.limits = root, limits
        root.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, WebJob] = {}
        self._queue: deque[WebJob] = deque()
        self._lock = threading.Condition()
        self._stopping = False
        self._recover()
        self._runners = [threading.Thread(target=self._runner, name=f"job-runner-{i}", daemon=True)
                         for i in range(1, limits.running + 1)]
        for runner in self._runners:
            runner.start()

    # --- what the routes ask ------------------------------------------------------------------------------

    def create(self, uploads: Sequence[tuple[str, IO[bytes]]], options: Options) -> WebJob:
        """Store and check the uploads (filename, stream) as a new queued job; Refused if any is bad."""
        if not uploads:
            raise Refused("choose at least one image")
        if len(uploads) > self.limits.files:
            raise Refused(f"at most {self.limits.files} images per job, got {len(uploads)}")
        job_id = secrets.token_urlsafe(16)
        folder = self.root / job_id
        (folder / "inputs").mkdir(parents=True)
        try:
            images = [self._store(folder, index, filename, stream, options.tile_size)
                      for index, (filename, stream) in enumerate(uploads)]
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = WebJob(job_id, folder, options, images, created=time.time())
        job.events.append({"type": "state", "state": "queued", "position": 0})
        with self._lock:
            self._jobs[job_id] = job
            self._queue.append(job)
            self._write(job)
            self._tell_positions()
            self._lock.notify()
        return job

    def get(self, job_id: str) -> WebJob | None:
        """The job, if job_id is one (anything else, however formed, is simply not found)."""
        if not ID.fullmatch(job_id):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def file(self, job: WebJob, name: str) -> Path | None:
        """A downloadable file of the job: only a name the job lists, and only once it finished."""
        if job.state != "done" or name not in job.files:
            return None
        path = job.folder / name
        return path if path.is_file() else None

    def output(self, job: WebJob, index: int) -> Path | None:
        """Image index's output: while the job runs, once saved (saves are whole: a rename), and after it."""
        if job.state not in ("running", "done") or not 0 <= index < len(job.images):
            return None
        path = job.output(index)
        return path if path.is_file() else None

    def preview(self, job: WebJob, index: int) -> Path | None:
        if not 0 <= index < len(job.images):
            return None
        path = job.folder / "inputs" / f"{index:03d}.preview.png"
        return path if path.is_file() else None

    def kill(self, job: WebJob, scenario: str) -> None:
        """The chaos scenario against the job's pods, now; NotNow (to the page) if it cannot take one."""
        if job.live is None or job.state != "running":
            raise NotNow("the job is not running")
        job.live.kill(scenario)

    def queue(self) -> dict[str, int]:
        with self._lock:
            running = sum(job.state == "running" for job in self._jobs.values())
            return {"running": running, "queued": len(self._queue), "limit": self.limits.running}

    def clean(self, older_than_s: float | None = None) -> int:
        """Remove finished jobs last touched more than older_than_s ago (default Limits.keep_s; 0: every
        finished job); the number removed.  Running and queued jobs stay."""
        keep = self.limits.keep_s if older_than_s is None else older_than_s
        now, removed = time.time(), 0
        with self._lock:
            doomed = [job for job in self._jobs.values()
                      if job.state not in ACTIVE and now - (job.finished or job.created) >= keep]
            for job in doomed:
                del self._jobs[job.id]
        for job in doomed:
            shutil.rmtree(job.folder, ignore_errors=True)
            removed += 1
        return removed

    def close(self) -> None:
        """Stop taking queued jobs (the running ones are left to the process's end)."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()

    # --- uploads ------------------------------------------------------------------------------------------

    def _store(self, folder: Path, index: int, filename: str, stream: IO[bytes], tile_size: int) -> dict[str, Any]:
        shown = (filename or "unnamed")[:200]
        upload = folder / "inputs" / f"{index:03d}.upload"
        size = 0
        with upload.open("wb") as out:
            while chunk := stream.read(MB):
                size += len(chunk)
                if size > self.limits.file_bytes:
                    raise Refused(f"{shown}: over {self.limits.file_bytes // MB} MB per file", 413)
                out.write(chunk)
        try:
            with Image.open(upload) as header:
                suffix, width, height = FORMATS.get(header.format or ""), header.width, header.height
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # over Pillow's own limit
            raise Refused(f"{shown}: over {self.limits.pixels:,} pixels (a decompression bomb, or simply too big "
                          "for this page)", 413) from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise Refused(f"{shown}: not an image (PNG, JPEG, GIF, BMP, TIFF or WebP)") from None
        if suffix is None:
            raise Refused(f"{shown}: {header.format} images are not taken (PNG, JPEG, GIF, BMP, TIFF or WebP)")
        if width * height > self.limits.pixels:
            raise Refused(f"{shown}: {width}x{height} is over {self.limits.pixels:,} pixels (a decompression "
                          "bomb, or simply too big for this page)", 413)
        path = upload.replace(upload.with_suffix(suffix))
        try:
            load_image(path, self.limits.pixels)  # the whole image decodes (not truncated, not 16-bit, ...)
        except ImageError as error:
            raise Refused(f"{shown}: {error.reason}") from None
        with Image.open(path) as image:
            preview = image.convert("RGBA")
        preview.thumbnail((PREVIEW_PX, PREVIEW_PX))
        preview.save(folder / "inputs" / f"{index:03d}.preview.png")
        tiles = [[t.id, t.x, t.y, t.width, t.height] for t in plan_tiles(width, height, tile_size)]
        return {"index": index, "name": f"{index + 1:02d}_{plain_stem(filename or '')}", "shown": shown,
                "path": path.name, "width": width, "height": height, "tiles": tiles}

    # --- running ------------------------------------------------------------------------------------------

    def _runner(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
                job.state = "running"
                self._write(job)
                self._tell_positions()
            job.events.append({"type": "state", "state": "running"})
            try:
                self._run(job)
            except Exception as error:  # a bug in a run must not take the server down with it
                log.exception("job %s failed", job.id)
                self._finish(job, "failed", f"{type(error).__name__}: {error}")

    def _run(self, job: WebJob) -> None:
        options, folder = job.options, job.folder
        config = _config(options, folder)
        sources = [ImageSource(folder / "inputs" / image["path"], image["name"]) for image in job.images]
        job.live = LiveRun(APPROACHES[options.approach], config, sources, job.events.append)
        measured = job.live.run()
        doc = document(config, [measured], verify([measured], sources, config))
        _write_text(folder / "results.json", headed(doc))
        files = ["results.json"]
        from visualize.charts import draw_all  # matplotlib is slow to import: only when drawing

        files += [str(path.relative_to(folder)) for path in draw_all(doc, folder / "charts")]
        outputs = [saved.output for saved in measured.outcome.saved]
        if outputs:
            _zip(outputs, folder / "outputs.zip")
            files.append("outputs.zip")
        job.files = files
        failed = [{"path": Path(f.path).name, "reason": f.reason} for f in measured.outcome.failed]
        result = {"type": "result", "saved": [s.name for s in measured.outcome.saved], "failed": failed,
                  "identical_to_a": measured.identical_to_a, "mismatches": measured.mismatches,
                  "wall_s": round(measured.wall_s, 3), "files": files}
        job.events.append(result)
        problems = len(failed) + len(measured.mismatches)
        self._finish(job, "done", f"{len(outputs)} of {len(sources)} images saved in {measured.wall_s:.2f} s"
                     + (f"; {problems} problems" if problems else "; every output identical to a's"))

    def _finish(self, job: WebJob, state: str, message: str) -> None:
        with self._lock:
            job.state, job.message, job.finished = state, message, time.time()
            self._write(job)
        job.events.append({"type": "state", "state": state, "message": message})
        job.events.close()
        with contextlib.suppress(OSError):
            job.events.save(job.folder / "events.jsonl")

    def _tell_positions(self) -> None:
        for position, waiting in enumerate(self._queue, 1):
            waiting.events.append({"type": "state", "state": "queued", "position": position})

    def _write(self, job: WebJob) -> None:
        _write_text(job.folder / "status.json", json.dumps(job.status()))

    def _recover(self) -> None:
        """Jobs a stopped server left: finished ones are kept as they were; queued or running ones are
        marked interrupted (their outputs are not offered); a folder without a status is removed."""
        for folder in sorted(self.root.iterdir()):
            if not (folder.is_dir() and ID.fullmatch(folder.name)):
                continue
            try:
                status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
                job = WebJob(folder.name, folder, Options(**status["options"]), status["images"],
                             status["created"], status["state"], status["message"], status["files"],
                             status["finished"], EventLog.load(folder / "events.jsonl"))
            except (OSError, ValueError, KeyError, TypeError):
                shutil.rmtree(folder, ignore_errors=True)  # an upload the server died during
                continue
            if job.state in ACTIVE:
                job.state, job.files, job.finished = "interrupted", [], time.time()
                job.message = "the server stopped during this job: run it again"
                for partial in folder.rglob("*.partial"):
                    partial.unlink(missing_ok=True)
                self._write(job)
                job.events = EventLog([{"type": "state", "state": job.state, "message": job.message}], closed=True)
            self._jobs[job.id] = job


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _zip(paths: Sequence[Path], target: Path) -> None:
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for path in paths:
            archive.write(path, arcname=path.name)
    partial.replace(target)
