"""One run's shared records in Redis, under blur:<run>:, and their clean-up.

Every run gets a fresh random id, so no run can read another's keys: the original course used fixed
keys (image:info:0, image:progress:0), and its loss demo read what earlier runs had left there.  Every
write also sets its key to expire RUN_TTL_S later, so a run killed before its clean-up leaves nothing
behind for long; a run that ends deletes all of its keys.

    plans        hash   image id -> ImagePlan (written by the coordinator before the image's first tile)
    status       hash   image id -> ImageReport (how the image ended; one per image)
    progress     hash   image id -> tiles assembled so far
    coordinated  string how many images the coordinator has dealt with, set once it has queued them all
    results:<i>  hash   tile id -> blurred tile (f, g: a result is stored before, or with, its job's ack)
    stored:<i>   set    tile ids whose result came in, kept after the image is saved (f; g's checkpoint)
    duplicates   hash   image id -> results stored again for a tile already in (f, g)
    done         string set by the assembler once every image has a report: workers stop (f, g)

A pod trusts nothing another pod wrote: records are checked as they are read (wire.py).
"""

import secrets
from collections.abc import Callable

import redis

from approaches.cluster.wire import RUN_ID_BYTES, ImagePlan, ImageReport, State, WireError

RUN_TTL_S = 24 * 3600


def new_run_id() -> str:
    return secrets.token_hex(RUN_ID_BYTES)


class Board:
    """The records of run `run` on one client; plans are read once per pod and kept."""

    def __init__(self, client: redis.Redis, run: str) -> None:
        self.client, self.run = client, run
        self._plans: dict[int, ImagePlan] = {}

    def key(self, name: str) -> str:
        return f"blur:{self.run}:{name}"

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

    def planned(self) -> list[int]:
        return sorted(int(image) for image in self.client.hkeys(self.key("plans")))

    def report(self, image: int, report: ImageReport) -> None:
        self._hset("status", image, report.encode())

    def reports(self) -> dict[int, ImageReport]:
        """Every image's report; one that cannot be read becomes a failure saying so."""
        reports = {}
        for image, data in self.client.hgetall(self.key("status")).items():
            try:
                reports[int(image)] = ImageReport.decode(data)
            except (ValueError, WireError) as error:
                reports[int(image)] = ImageReport(State.FAILED, reason=f"unreadable report ({error})")
        return reports

    def finished(self) -> int:
        """How many images have a report."""
        return self.client.hlen(self.key("status"))

    def count_assembled(self, image: int) -> None:
        self._hincr("progress", image)

    def assembled(self) -> int:
        """Tiles assembled so far, over every image."""
        return sum(int(count) for count in self.client.hvals(self.key("progress")))

    def mark_coordinated(self, images: int) -> None:
        self.client.set(self.key("coordinated"), images, ex=RUN_TTL_S)

    def coordinated(self) -> int | None:
        """How many images the coordinator dealt with, once it has queued them all; None until then."""
        value = self.client.get(self.key("coordinated"))
        return None if value is None else int(value)

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

    def results_stored(self, image: int) -> int:
        return self.client.hlen(self.key(f"results:{image}"))

    def results(self, image: int) -> dict[int, bytes]:
        return {int(tile): body for tile, body in self.client.hgetall(self.key(f"results:{image}")).items()}

    def drop_results(self, image: int) -> None:
        self.client.unlink(self.key(f"results:{image}"))

    def duplicates(self, image: int) -> int:
        return int(self.client.hget(self.key("duplicates"), image) or 0)

    def mark_done(self) -> None:
        self.client.set(self.key("done"), 1, ex=RUN_TTL_S)

    def done(self) -> bool:
        return bool(self.client.exists(self.key("done")))

    def delete(self) -> None:
        """Remove every key of the run."""
        keys = list(self.client.scan_iter(match=f"blur:{self.run}:*", count=1000))
        if keys:
            self.client.unlink(*keys)

    def _hset(self, name: str, image: int, value: bytes, pipe: redis.client.Pipeline | None = None) -> None:
        own = pipe is None
        pipe = self.client.pipeline(transaction=False) if own else pipe
        pipe.hset(self.key(name), image, value).expire(self.key(name), RUN_TTL_S)
        if own:
            pipe.execute()

    def _hincr(self, name: str, image: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(self.key(name), image, 1).expire(self.key(name), RUN_TTL_S).execute()
