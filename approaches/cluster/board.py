"""One run's shared records in Redis, under blur:<run>:, read defensively, and their clean-up.

Every run gets a fresh random id, so no run can read another's keys: the original course used fixed
keys (image:info:0, image:progress:0), and its loss demo read what earlier runs had left there.  Every
write also sets its key to expire RUN_TTL_S later, so a run killed before its clean-up leaves nothing
behind for long.

    inputs       string the run's images as [name, content hash] pairs: a resumed coordinator must match it
    plans        hash   image id -> ImagePlan (written by the coordinator with the image's tiles)
    status       hash   image id -> ImageReport (how the image ended; one per image)
    progress     hash   image id -> tiles assembled so far (e)
    coordinated  string how many images the coordinator has dealt with, set once it has queued them all
    results:<i>  hash   tile id -> blurred tile (f, g: a result is stored before, or with, its job's ack)
    stored:<i>   set    tile ids whose result came in, kept after the image is saved (f; g's checkpoint)
    duplicates   hash   image id -> results stored again for a tile already in (f, g)
    done         string set by the assembler once every image has a report: workers stop (f, g, j)
    queued       set    image ids whose tiles RabbitMQ has confirmed, all of them (j's coordinator)
    holding      hash   worker -> the first bytes of the tile it holds (j: RabbitMQ tells no client that)
    summary      string what a finished run keeps: each image's report, the run's counts (f, g)
    <queue>:dead stream dead letters: reason, size and first bytes of each message set aside
    records:dead stream the same, for records above that could not be read

A pod trusts nothing another pod wrote: records are checked as they are read (wire.py), and a record that
cannot be read (a hash field that is not an image id, a count that is not a number) is set aside on
records:dead with the reason and removed, never a crash.  A finished run keeps only `summary`, `done`,
`inputs` and its dead letters (`finish`); `delete` removes everything.
"""

import json
import secrets
from collections.abc import Callable

import redis

from approaches.cluster.queues import RUN_TTL_S, DeadLetter, dead_letter, dead_letters
from approaches.cluster.wire import RUN_ID_BYTES, ImagePlan, ImageReport, State, WireError
from approaches.core.errors import BlurSuiteError

KEPT = ("summary", "done", "inputs")  # with the dead letters, what finish() leaves of a run


class ResumeRefused(BlurSuiteError):
    """A coordinator was started on a run whose images are not the ones it was given, or that is finished."""


def new_run_id() -> str:
    return secrets.token_hex(RUN_ID_BYTES)


class Board:
    """The records of run `run` on one client; plans are read once per pod and kept."""

    def __init__(self, client: redis.Redis, run: str) -> None:
        self.client, self.run = client, run
        self._plans: dict[int, ImagePlan] = {}

    def key(self, name: str) -> str:
        return f"blur:{self.run}:{name}"

    # --- the run's images and their plans ---------------------------------------------------------------

    def claim_inputs(self, inputs: list[list[str]]) -> None:
        """Record the run's images ([name, hash] pairs), or check them against what an earlier coordinator
        recorded: ResumeRefused, with what differs, if they are not the same images."""
        mine = json.dumps(inputs)
        self.client.set(self.key("inputs"), mine, nx=True, ex=RUN_TTL_S)
        theirs = self.client.get(self.key("inputs"))
        if theirs is not None and theirs.decode(errors="replace") != mine:
            try:
                earlier = {tuple(pair) for pair in json.loads(theirs)}
            except (ValueError, TypeError):
                earlier = set()
            now = {tuple(pair) for pair in inputs}
            differ = sorted({name for name, _ in earlier ^ now}) or ["(unreadable record)"]
            raise ResumeRefused(f"run {self.run} was started with other images (differing: "
                                f"{', '.join(differ[:5])}{', ...' if len(differ) > 5 else ''}); give the same "
                                "--input to carry it on, or start a new run")

    def publish_plan(self, image: int, plan: ImagePlan, pipe: redis.client.Pipeline | None = None) -> None:
        """Publish the plan; with pipe, as part of that pipeline (a transaction that also queues the tiles)."""
        self._hset("plans", image, plan.encode(), pipe)

    def plan(self, image: int) -> ImagePlan:
        """The image's plan; WireError if there is none or it does not pass the checks."""
        if image not in self._plans:
            data = self.client.hget(self.key("plans"), image)
            if data is None:
                raise WireError(f"no plan for image {image}")
            self._plans[image] = ImagePlan.decode(data)
        return self._plans[image]

    def drop_plan(self, image: int, reason: str) -> None:
        """Set a plan record aside with the reason (one for an image the run does not have)."""
        self.set_aside("plans", self.client.hget(self.key("plans"), image) or b"", reason)
        self.client.hdel(self.key("plans"), image)

    def planned(self) -> list[int]:
        """The ids of the images with a plan record (whether or not it can be read)."""
        return sorted(self._ids("plans"))

    # --- how images ended ---------------------------------------------------------------------------------

    def report(self, image: int, report: ImageReport) -> None:
        self._hset("status", image, report.encode())

    def reports(self) -> dict[int, ImageReport]:
        """Every image's report; one that cannot be read becomes a failure saying so."""
        reports = {}
        for image, data in self._ids("status").items():
            try:
                reports[image] = ImageReport.decode(data)
            except (ValueError, WireError) as error:
                reports[image] = ImageReport(State.FAILED, reason=f"unreadable report ({error})")
        return reports

    def finished(self, images: int) -> int:
        """How many of the run's images (ids below `images`) have a report; a report for any other id is
        set aside, so none can end a run early."""
        return len(self._ids("status", below=images))

    def count_assembled(self, image: int) -> None:
        self._hincr("progress", image)

    def assembled(self) -> int:
        """Tiles assembled so far, over every image."""
        return sum(self._count(value, "progress") for value in self._ids("progress").values())

    def mark_coordinated(self, images: int, pipe: "redis.client.Pipeline | None" = None) -> None:
        """Record that every image is queued (with pipe: as part of the caller's transaction)."""
        (pipe or self.client).set(self.key("coordinated"), images, ex=RUN_TTL_S)

    def coordinated(self) -> int | None:
        """How many images the coordinator dealt with, once it has queued them all; None until then (or if
        the record cannot be read: it is then set aside, and the coordinator's give-up clock decides)."""
        value = self.client.get(self.key("coordinated"))
        if value is None:
            return None
        if value.isdigit():
            return int(value)
        self.set_aside("coordinated", value, "not a count of images")
        self.client.delete(self.key("coordinated"))
        return None

    # --- results (f, g) -------------------------------------------------------------------------------------

    def store_result(self, image: int, tile: int, body: bytes,
                     also: Callable[[redis.client.Pipeline], None] | None = None) -> bool:
        """Keep a tile's result until its image is saved; False (and counted) if that tile came in before.

        The set of tiles stored outlives the results, which go once the image is saved, so a duplicate
        that comes even later is still recognised.  Both are written in one transaction, with whatever
        also() adds to it (g acks the tile's job in it)."""
        results, stored = self.key(f"results:{image}"), self.key(f"stored:{image}")
        pipe = (self.client.pipeline(transaction=True).sadd(stored, tile).hset(results, tile, body)
                .expire(stored, RUN_TTL_S).expire(results, RUN_TTL_S))
        if also is not None:
            also(pipe)
        fresh, *_ = pipe.execute()
        if not fresh:
            self._hincr("duplicates", image)
        return bool(fresh)

    def is_stored(self, image: int, tile: int) -> bool:
        """Whether the tile's result came in: the checkpoint a worker reads before doing a tile again."""
        return bool(self.client.sismember(self.key(f"stored:{image}"), tile))

    def result_tiles(self, image: int, tiles: int) -> set[int]:
        """The ids of the tiles (out of `tiles`) whose result is stored; other fields are set aside."""
        return set(self._ids(f"results:{image}", below=tiles, values=False))

    def results(self, image: int, tiles: int) -> dict[int, bytes]:
        return self._ids(f"results:{image}", below=tiles)

    def drop_results(self, image: int) -> None:
        self.client.unlink(self.key(f"results:{image}"))

    def duplicates(self, image: int) -> int:
        return self._count(self.client.hget(self.key("duplicates"), image), "duplicates")

    def mark_done(self) -> None:
        self.client.set(self.key("done"), 1, ex=RUN_TTL_S)

    def done(self) -> bool:
        return bool(self.client.exists(self.key("done")))

    # --- what is set aside, and the end of a run --------------------------------------------------------------

    def set_aside(self, source: str, data: bytes, reason: str) -> None:
        """A record that cannot be read, onto records:dead with the reason."""
        dead_letter(self.client, self.key("records"), data, f"{source}: {reason}")

    def dead_letters(self) -> list[tuple[str, DeadLetter]]:
        """Every dead letter of the run, as (where it was set aside from, the letter)."""
        return [(source, letter) for source in ("jobs", "results", "records")
                for letter in dead_letters(self.client, self.key(source))]

    def finish(self, summary: dict) -> None:
        """The run is over: keep `summary` (and `done`, and the dead letters: reasons and headers, no pixels),
        and delete every other key of the run, so a finished run leaves a few kilobytes behind."""
        self.client.set(self.key("summary"), json.dumps(summary), ex=RUN_TTL_S)
        self.mark_done()
        keep = {self.key(name) for name in KEPT} | {self.key(f"{source}:dead") for source in ("jobs", "results",
                                                                                                "records")}
        doomed = [key for key in self.client.scan_iter(match=f"blur:{self.run}:*", count=1000)
                  if key.decode(errors="replace") not in keep]
        if doomed:
            self.client.unlink(*doomed)

    def summary(self) -> dict | None:
        """What finish() kept, or None for a run that is not finished (or whose summary cannot be read)."""
        data = self.client.get(self.key("summary"))
        try:
            summary = json.loads(data) if data is not None else None
        except ValueError:
            return None
        return summary if isinstance(summary, dict) else None

    def delete(self) -> None:
        """Remove every key of the run."""
        keys = list(self.client.scan_iter(match=f"blur:{self.run}:*", count=1000))
        if keys:
            self.client.unlink(*keys)

    # --- reading hashes written by others -------------------------------------------------------------------

    def _ids(self, name: str, below: int | None = None, values: bool = True) -> dict[int, bytes]:
        """A hash whose fields must be image or tile ids (0 <= id < below); any other field is set aside
        with the reason and removed."""
        fields = self.client.hgetall(self.key(name)) if values else dict.fromkeys(self.client.hkeys(self.key(name)))
        good, bad = {}, []
        for field, value in fields.items():
            if field.isdigit() and (below is None or int(field) < below):
                good[int(field)] = value
            else:
                bad.append(field)
        for field in bad:
            self.set_aside(name, field, f"field {field[:32]!r} is not an id" + (f" below {below}" if below else ""))
        if bad:
            self.client.hdel(self.key(name), *bad)
        return good

    def _count(self, value: bytes | None, source: str) -> int:
        if value is None:
            return 0
        if value.isdigit():
            return int(value)
        self.set_aside(source, value, "not a count")
        return 0

    def _hset(self, name: str, image: int, value: bytes, pipe: redis.client.Pipeline | None = None) -> None:
        own = pipe is None
        pipe = self.client.pipeline(transaction=False) if own else pipe
        pipe.hset(self.key(name), image, value).expire(self.key(name), RUN_TTL_S)
        if own:
            pipe.execute()

    def _hincr(self, name: str, image: int) -> None:
        pipe = self.client.pipeline(transaction=False).hincrby(self.key(name), image, 1).expire(self.key(name),
                                                                                                RUN_TTL_S)
        try:
            pipe.execute()
        except redis.ResponseError:  # someone wrote a value that is not a number there: count from 1 again
            self.set_aside(name, self.client.hget(self.key(name), image) or b"", f"image {image}: not a count")
            self._hset(name, image, b"1")
