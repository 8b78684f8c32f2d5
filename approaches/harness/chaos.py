"""Fault scenarios against the queue approaches and h, each with a summary of only what it measured.

``run_all.py chaos e,f,g`` runs every scenario against each approach named, on the chosen broker
(process pods and real SIGKILL on embedded:// or redis://, thread pods dying at their next fault point
on memory://), and sets the results side by side:

    workers      once tiles are in flight, every worker pod is killed, then restarted
    one-worker   once tiles are in flight, worker-1 is killed and stays dead: the others must finish
    assembler    once tiles are in flight, the assembler is killed, then restarted
    coordinator  once the first image is queued, the coordinator is killed, then restarted
    broker       once tiles are in flight, the broker itself is restarted: the Redis server (embedded://
                 only: it runs with an append-only file, so what it held comes back), or for j its private
                 RabbitMQ node (its quorum queue is on disk)
    junk         once tiles are in flight, malformed records of every kind are pushed into the run's queues
                 and records; each must be dead-lettered with its reason, and nothing lost
    hung         once tiles are in flight, worker-1 is stopped (SIGSTOP) and stays so: alive, holding its
                 tile, silent.  Who notices, and when: f once its heartbeat key expires, g once the entry has
                 been idle visibility_s, j once its AMQP heartbeats stop; e never (process pods only)

Each run:
1. the approach runs under a fresh run id (so fresh keys) with slow workers (DEMO_SETTINGS.tile_delay_s per tile);
2. the scenario's kill; the restarted pods carry on, the assembler saves each image that is whole and,
   after its Settings wait without progress (result_wait_s for e, progress_wait_s for f and g), reports the
   others incomplete;
3. per image: expected (tiles in its plan), processed (distinct tiles that came back), missing,
   duplicates, and whether its output file is on disk; then a RESULT line.  The exit status is 1 when
   tiles were lost, as in the original.
4. the recovery time: from the kill until the last tile that was in flight at the kill is done again (its
   result stored).  f and g can name the tiles their workers hold (processing lists; the consumer group's
   pending entries), so it is measured for them; e keeps no record of what a worker took, so it cannot tell
   (and what its killed workers held is lost for good); junk kills nothing.  None in those cases.

h has no queue, pods or broker: its scenarios (`workers`, `one-worker`) SIGKILL worker processes of its own
LocalCluster (DaskFaults: h's chaos hook), the nannies restart them, and dask's scheduler says what was
lost and reruns it.

e loses what its killed pods held; f, g and h hand it to others and lose nothing.  The original demo read
keys that earlier runs had left behind (it had no run id), so it could report a loss that never
happened, and looked for its input in a folder the coordinator could not see.  Here every number comes
from this run's keys, and outputs go to <output>/chaos-<letter>/, cleared of this run's images first,
so "present" can only mean this run saved it.  The table also goes to logs/ as JSON, and to
logs/charts/chaos.png.
"""

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np
import redis

from approaches import e_naive_queue, f_reliable_queue, g_service, h_dask, j_rabbitmq
from approaches.cluster.amqp import open_amqp
from approaches.cluster.board import Board
from approaches.cluster.broker import Broker, open_broker
from approaches.cluster.deployment import Cluster, Roles, launched
from approaches.cluster.queues import WorkQueue
from approaches.cluster.wire import ImageReport, Kind, State, TileJob, TileResult, peek
from approaches.core.config import RunConfig
from approaches.core.errors import ImageError
from approaches.core.images import ImageSource, load_image, output_path
from approaches.core.job import Job
from approaches.core.kernel import blur
from approaches.core.settings import Settings
from approaches.core.trace import Span, Tracer
from approaches.core.urls import redact
from approaches.harness.results import Output, Say, settings_of, write_document

if TYPE_CHECKING:
    from distributed import Client

DEMO_SETTINGS = Settings(
    tile_delay_s=0.05,  # per tile, per worker: long enough that a kill finds every worker holding one
    # the assemblers' patience without a result: longer than f's and g's visibility timeout (a dead worker's
    # tiles wait that long for others), and than a worker process takes to restart
    result_wait_s=8.0,
    progress_wait_s=8.0,
)
IN_FLIGHT_TIMEOUT_S = 60.0  # spawning worker processes on a busy machine can take a while
DASK_IN_FLIGHT_TIMEOUT_S = 30.0  # h: its LocalCluster has started before its first tiles are out
POLL_S = 0.01



@dataclass(frozen=True)
class Tally:
    """One approach's totals under one scenario."""

    scenario: str
    letter: str
    images: int
    expected: int
    in_flight: int  # tiles held by workers when the kill came
    missing: int
    duplicates: int
    unsaved: int
    differ: int  # outputs saved whose pixels are not a's
    recovery_s: float | None = None  # the kill -> the last tile in flight at it done again; None: see step 4


@dataclass(frozen=True)
class Kill:
    """What a scenario disrupted: how many tiles were in flight, when, and which (as far as the approach can tell)."""

    held: int
    at: float | None = None  # time.monotonic() just before the kill; None: nothing was killed
    tiles: Set[tuple[int, int]] | None = None  # (image id, tile id); None: the approach cannot tell which


def chaos(config: RunConfig, out: Output, letters: Sequence[str], scenarios: Sequence[str],
          sources: Sequence[ImageSource]) -> int:
    """run_all.py chaos e,f,g: every scenario (keys of SCENARIOS) against each approach named, the table, the chart;
    the exit status.  Workers are slowed by config.settings.tile_delay_s (DEMO_SETTINGS unless the caller chose
    settings)."""
    logging.basicConfig(level=logging.WARNING if out.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    scenarios, scheme = list(scenarios), urlsplit(config.broker).scheme
    if "broker" in scenarios and scheme != "embedded" and set(letters) - {"h", "j"}:
        print(f"chaos: the broker scenario needs --broker embedded://; skipped on {redact(config.broker)}")
    if "broker" in scenarios and config.amqp is not None and "j" in letters:
        print("chaos: the broker scenario restarts only a RabbitMQ node started here; skipped for j on --amqp")
    if "hung" in scenarios and scheme == "memory":
        scenarios.remove("hung")  # a thread cannot be stopped from outside, and stays answering if its pod is
        print("chaos: the hung scenario stops a worker process (SIGSTOP): it needs --broker embedded:// or "
              "redis://; skipped on memory://")
    tallies = [tally for scenario in scenarios for letter in letters if _applies(config, letter, scenario)
               and (tally := run_scenario(config, sources, letter, scenario)) is not None]
    _side_by_side(tallies, print)
    doc = _document(config, letters, scenarios, tallies)
    problems = write_document(out, doc, "_chaos", draw=lambda folder: [_draw(doc, folder)])
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems or any(tally.missing or tally.unsaved or tally.differ for tally in tallies) else 0


def _applies(config: RunConfig, letter: str, scenario: str) -> bool:
    """Whether the suite can do scenario to letter's deployment: it restarts only a broker it started itself."""
    if scenario == "broker" and letter == "j":
        return config.amqp is None
    return scenario != "broker" or letter == "h" or urlsplit(config.broker).scheme == "embedded"


@contextmanager
def _deployed(config: RunConfig, letter: str) -> Iterator[tuple[Broker, Roles]]:
    """The broker and the roles of a queue approach; j's are its RabbitMQ node's (the broker scenario restarts
    that node, not the Redis server that keeps j's results)."""
    with open_broker(config.broker) as broker:
        if letter != "j":
            yield broker, ROLES_BY_LETTER[letter]
            return
        with open_amqp(config.amqp) as amqp:
            yield (replace(broker, shown=f"{broker.shown} and {amqp.shown}", restart=amqp.restart),
                   j_rabbitmq.roles(amqp))


def run_scenario(config: RunConfig, sources: Sequence[ImageSource], letter: str, scenario: str, *,
                 say: Say = print) -> Tally | None:
    """Run the approach, do the scenario's kills, and report per image what was lost (None: the scenario does
    not apply to the approach)."""
    job = Job(config, tuple(sources), f"chaos-{letter}")
    settings = config.settings
    for source in sources:
        output_path(config.output_dir, job.letter, source.name).unlink(missing_ok=True)
    if letter == "h":
        return _run_h(job, scenario, say)
    with _deployed(config, letter) as (broker, roles), launched(broker, job, roles) as cluster:
        say(f"\nchaos {letter} {scenario}: run {cluster.board.run} on {broker.shown}: {len(cluster.workers)} "
            f"worker pods ({'processes' if broker.pods_are_processes else 'threads'}), "
            f"{settings.tile_delay_s:g} s per tile")
        how = "SIGKILL" if broker.pods_are_processes else "each dies at its next fault point"
        kill = SCENARIOS[scenario](cluster, how, say)
        recovery_s = _recovery(cluster, kill)
        say(f"waiting for the assembler to finish or give up ({roles.gives_up_after(settings):g} s without progress)")
        _, reports = cluster.collect(Tracer())
        left = cluster.left()
        # Read now that the workers have stopped, not from the summary: a worker may set a junk job aside
        # after the assembler wrote it (a stream hands junk out behind the real tiles).
        letters = cluster.board.dead_letters()
    pills = " (among them the STOP pills that killed workers never took)" if letter == "e" and left.get("jobs") else ""
    say(f"left in the queues: jobs={left.get('jobs', 0)}{pills} results={left.get('results', 0)}")
    for source, dead in letters:
        say(f"dead-lettered from {source}: {dead.reason}")
    return replace(_summary(job, letter, scenario, kill.held, reports, say), recovery_s=recovery_s)


def _run_h(job: Job, scenario: str, say: Say) -> Tally | None:
    """h on its own LocalCluster, under h's version of the scenario (DaskFaults, below): dask's scheduler, not a
    queue, says what was lost and reruns it."""
    if scenario not in DASK_SCENARIOS:
        say(f"\nchaos h {scenario}: skipped; h has no {scenario} to kill (its scenarios: "
            f"{', '.join(DASK_SCENARIOS)})")
        return None
    say(f"\nchaos h {scenario}: a LocalCluster of {job.config.workers} worker processes, "
        f"{job.config.settings.tile_delay_s:g} s per tile; SIGKILL, each restarted by its nanny")
    chaos = DaskFaults(scenario)
    outcome = h_dask.run(job, Tracer(), chaos=chaos)
    faults = chaos if chaos.struck else None  # None: no image could be loaded, so nothing was killed
    held = len(faults.lost) if faults is not None else 0
    if faults is not None:
        say(f"{held} tiles lost with the killed workers; {faults.redone} run again, the last "
            f"{faults.recovery_s or 0:.2f} s after the kill")
    saved = {saved.name for saved in outcome.saved}
    reports = {source.name: ImageReport(State.SAVED if source.name in saved else State.FAILED,
                                        *_h_counts(faults, source.name))
               for source in job.images}
    tally = _summary(job, "h", scenario, held, reports, say)
    return replace(tally, recovery_s=faults.recovery_s if faults is not None else None)


def _h_counts(faults: "DaskFaults | None", image: str) -> tuple[int, int, int]:
    """(expected, processed, duplicates) of one image, as h's DaskFaults counted them."""
    if faults is None:
        return 0, 0, 0
    expected, missing, twice = faults.per_image(image)
    return expected, expected - missing, twice  # an ImageReport's expected, processed, duplicates


# --- the scenarios: each kills, restarts, and returns the tiles in flight at the kill -----------------


def kill_every_worker(cluster: Cluster, how: str, say: Say) -> Kill:
    kill = _wait_for_tiles_in_flight(cluster, at_least=len(cluster.workers))
    names = ", ".join(pod.name for pod in cluster.workers)
    say(f"{kill.held} tiles in flight: killing {names} ({how})")
    for pod in cluster.workers:
        pod.kill()
    for pod in cluster.workers:
        pod.restart()
    say(f"restarted {names}")
    return kill


def kill_one_worker(cluster: Cluster, how: str, say: Say) -> Kill:
    kill = _wait_for_tiles_in_flight(cluster, at_least=len(cluster.workers))
    pod = cluster.workers[0]
    say(f"{kill.held} tiles in flight: killing {pod.name} ({how}); it stays dead")
    pod.kill()
    return kill


def kill_the_assembler(cluster: Cluster, how: str, say: Say) -> Kill:
    _wait_for_tiles_in_flight(cluster, at_least=len(cluster.workers))
    _wait_for(lambda: _results_in(cluster) > 0)  # so the assembler has something to lose, if it keeps any
    kill = _in_flight_now(cluster)
    say(f"{kill.held} tiles in flight: killing the assembler ({how})")
    cluster.assembler.kill()
    cluster.assembler.restart()
    say("restarted the assembler")
    return kill


def kill_the_coordinator(cluster: Cluster, how: str, say: Say) -> Kill:
    deadline = time.monotonic() + IN_FLIGHT_TIMEOUT_S
    while not cluster.board.planned() and time.monotonic() < deadline:
        time.sleep(POLL_S / 10)
    finished = cluster.board.coordinated() is not None
    kill = _in_flight_now(cluster)
    say(f"{len(cluster.board.planned())} images queued: killing the coordinator ({how})"
        + (" (it had already queued every image)" if finished else ""))
    cluster.coordinator.kill()
    cluster.coordinator.restart()
    say("restarted the coordinator")
    return kill


def restart_the_broker(cluster: Cluster, how: str, say: Say) -> Kill:
    kill = _wait_for_tiles_in_flight(cluster, at_least=len(cluster.workers))
    say(f"{kill.held} tiles in flight: restarting the broker (SIGTERM; it writes what it holds to disk and reads it "
        "back); every pod's connection drops, and its client retries")
    started = time.monotonic()
    cluster.broker.restart()
    say(f"the broker was down for {time.monotonic() - started:.2f} s")
    return kill


def hang_one_worker(cluster: Cluster, how: str, say: Say) -> Kill:
    """worker-1 stopped where it is (SIGSTOP), for good: alive to the kernel, its connections open, holding its
    tile, silent.  It is killed when the run ends, like any pod still running then."""
    kill = _wait_for_tiles_in_flight(cluster, at_least=len(cluster.workers))
    pod = cluster.workers[0]
    say(f"{kill.held} tiles in flight: stopping {pod.name} (SIGSTOP): alive, holding its tile, silent")
    pod.hang()
    return kill


def push_junk(cluster: Cluster, how: str, say: Say) -> Kill:
    """Once tiles are in flight, write every kind of malformed record into the run's queues and records, as a
    buggy or hostile client would: every one must be set aside with its reason, and nothing lost."""
    held = _wait_for_tiles_in_flight(cluster, at_least=len(cluster.workers)).held
    outside = _jobs_queue(cluster) if cluster.roles.jobs_queue is not None else None
    kinds = junk(cluster.board, len(cluster.job.images), outside)
    if outside is not None:
        outside.close()
    say(f"{held} tiles in flight: pushing {len(kinds)} malformed records into the run's queues and records "
        f"({', '.join(kinds)})")
    return Kill(held)  # nothing killed: nothing to recover from


def junk(board: Board, images: int, outside: WorkQueue | None = None) -> list[str]:
    """Write one malformed record of each kind into run `board.run`: into each of its lists (at the end that is
    taken next) and streams (the job queue, e's result list, the dead-letter streams), beside its records, and
    into its job queue outside Redis if it has one (`outside`: j's, on RabbitMQ); the kinds written."""
    client, written = board.client, []
    if outside is not None:
        for what, message in forged_messages(board, images).items():
            outside.put(message)
            written.append(what)
    for name, expected in (("jobs", TileJob), ("results", TileResult), ("jobs:dead", TileJob),
                           ("records:dead", TileJob)):
        key, kind = board.key(name), client.type(board.key(name))
        for what, message in forged_messages(board, images, expected).items():
            if kind == b"list":
                client.rpush(key, message)
            elif kind == b"stream":
                client.xadd(key, {"body": message})
            written.append(what)
        if kind == b"stream":
            client.xadd(key, {"not-a-body": b"x"})
            client.xadd(key, {"body": b"x", "and-more": b"x"})
            written += ["a stream entry without a body", "a stream entry with a field beside its body"]
    client.hset(board.key("plans"), images + 3, b"not a plan")  # a plan for an image the run does not have
    client.hset(board.key("plans"), "not-an-id", b"{}")
    client.hset(board.key("status"), "not-an-id", b"{}")
    return sorted({*written, "an unreadable plan", "a record under a field that is not an id"})


def forged_messages(board: Board, images: int,
                    expected: type[TileJob] | type[TileResult] = TileJob) -> dict[str, bytes]:
    """Messages a reader expecting `expected` (a job, or a result) must refuse, each named by what is wrong."""
    image = board.planned()[0]
    plan = board.plan(image)
    tile = plan.tiles[0]
    halo = plan.halo if expected is TileJob else 0
    pixels = np.zeros((tile.height + 2 * halo, tile.width + 2 * halo, plan.channels), np.uint8)
    body = expected(board.run, image, tile, plan.kernel_size, pixels).encode()
    other = TileResult if expected is TileJob else TileJob
    other_halo = plan.halo if other is TileJob else 0
    wrong_kind = other(board.run, image, tile, plan.kernel_size,
                       np.zeros((tile.height + 2 * other_halo, tile.width + 2 * other_halo, plan.channels), np.uint8))
    return {
        "bytes that are not a message": b"\x00junk",
        "a message of another run": body[:6] + bytes(8) + body[14:],
        "a message of the wrong kind": wrong_kind.encode(),
        "an unknown image": expected(board.run, images + 7, tile, plan.kernel_size, pixels).encode(),
        "impossible geometry": body[:26] + (10**6).to_bytes(4, "little") + body[30:],
        "a wrong checksum": body[:-1] + bytes([body[-1] ^ 0xFF]),
    }


def _all_processed(cluster: Cluster, tiles: Set[tuple[int, int]]) -> bool:
    """Whether the finished run's summary has every tile of these tiles' images processed (so these too)."""
    images = (cluster.board.summary() or {}).get("images", {})
    try:
        return all(images[str(image)]["processed"] >= images[str(image)]["expected"] for image, _ in tiles)
    except (KeyError, TypeError):
        return False


def _results_in(cluster: Cluster) -> int:
    """Results that reached the assembler: assembled from e's list, or stored on the board by f and g."""
    board = cluster.board
    return board.assembled() + sum(len(board.result_tiles(image, 1 << 20)) for image in board.planned())


def _wait_for(condition: Callable[[], bool]) -> None:
    """Poll condition every POLL_S until it holds, or IN_FLIGHT_TIMEOUT_S passes."""
    deadline = time.monotonic() + IN_FLIGHT_TIMEOUT_S
    while not condition() and time.monotonic() < deadline:
        time.sleep(POLL_S)


def _wait_for_tiles_in_flight(cluster: Cluster, at_least: int) -> Kill:
    """Wait until at_least tiles are in flight (or IN_FLIGHT_TIMEOUT_S passes); then what is in flight."""
    _wait_for(lambda: (cluster.tiles_in_flight() or 0) >= at_least)
    return _in_flight_now(cluster)


def _in_flight_now(cluster: Cluster) -> Kill:
    """The tiles in flight, now, just before a kill: their count, and which they are where the approach can tell."""
    tiles = None
    if (queue := _jobs_queue(cluster)) is not None and (bodies := queue.in_flight_bodies()) is not None:
        tiles = set()
        for body in bodies:  # its header names the tile (j's workers note no more); junk names none
            if (header := peek(body, cluster.board.run)) is not None and header[0] is Kind.JOB:
                tiles.add(header[1:])
    return Kill(cluster.tiles_in_flight() or 0, time.monotonic(), tiles)


def _jobs_queue(cluster: Cluster) -> WorkQueue | None:
    make = cluster.roles.jobs_queue or JOB_QUEUES.get(cluster.job.letter.removeprefix("chaos-"))
    return None if make is None else make(cluster.board, "chaos", cluster.job.config.settings)


def _recovery(cluster: Cluster, kill: Kill) -> float | None:
    """Seconds from the kill until every tile in flight at it has its result stored (polled every POLL_S; where
    the run finished between two polls, the time it was seen finished); None when nothing was killed, the
    approach cannot tell which tiles it held, none were held, or they were never all done."""
    if kill.at is None or not kill.tiles:
        return None
    waiting, deadline = set(kill.tiles), time.monotonic() + IN_FLIGHT_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            waiting = {(image, tile) for image, tile in waiting if not cluster.board.is_stored(image, tile)}
            if not waiting:
                return round(time.monotonic() - kill.at, 3)
            if cluster.board.done():  # finished meanwhile, and its records deleted: ask its summary
                return round(time.monotonic() - kill.at, 3) if _all_processed(cluster, waiting) else None
        except redis.RedisError:
            pass  # the broker is restarting: its client retries, and so do we
        time.sleep(POLL_S)
    return None


# --- h's scenarios: kill worker processes of h's LocalCluster while tiles are in flight -----------------


class DaskFaults:
    """What a chaos scenario may do to h's own LocalCluster while its tiles are in flight, and what came of it:
    h_dask.run's chaos hook (h calls started() once its first tiles are out, finished() at its end).

    A kill is SIGKILL to worker processes; their nannies stay and start fresh ones.  What was lost is
    dask's own account, the scheduler's "remove-worker" event for each victim: the tiles it was running
    or had queued (``lost``; the scheduler hands them to the workers left, or to come, at once), and the
    results it held that the client had not yet taken (a result lives on its worker until then: dask
    recomputes it too, unless the client, holding it by then, lets it go first).  After the run: how many
    lost tiles ran again, when the last of them ended (recovery_s counts from the kill), and how many
    tiles were finished twice.
    """

    def __init__(self, scenario: str | None = None) -> None:
        """scenario: a key of DASK_SCENARIOS, done as soon as the first tiles are out (None: kills come later,
        from the web page's kill button)."""
        self._scenario = scenario
        self._client: Client | None = None
        self._names: Mapping[str, tuple[str, int]] = {}
        self.victims: list[str] = []  # the workers killed, by address
        self.killed_at: float | None = None  # time.perf_counter() of the kill
        self.lost: set[tuple[str, int]] = set()  # (image, tile) the victims were running or had queued
        self.redone = 0  # of the lost tiles, how many ran again after the kill
        self.expected = 0  # tiles submitted in the run
        self.missing = 0  # tiles submitted and never blurred: 0 unless an image failed
        self.done_twice = 0  # tiles finished twice: a result lost with its worker before the client took it
        self.recovered_at: float | None = None
        self._per_image: dict[str, tuple[int, int, int]] = {}

    def started(self, client: "Client", tiles: Mapping[str, tuple[str, int]]) -> None:
        """h's first tiles are out: hold its client and its tiles, and do the scenario."""
        self._client, self._names = client, tiles
        if self._scenario is not None:
            DASK_SCENARIOS[self._scenario](self)

    @property
    def struck(self) -> bool:
        """Whether h got as far as its first tiles (with no image loaded, nothing is ever killed)."""
        return self._client is not None

    @property
    def workers(self) -> int:
        return len(self._client.scheduler_info()["workers"])

    @property
    def recovery_s(self) -> float | None:
        """From the kill to the end of the last lost tile run again; None without a kill or a lost tile."""
        if self.killed_at is None or self.recovered_at is None:
            return None
        return self.recovered_at - self.killed_at

    def per_image(self, image: str) -> tuple[int, int, int]:
        """After the run: (tiles submitted, never blurred, blurred twice) of one image."""
        return self._per_image.get(image, (0, 0, 0))

    def in_flight(self) -> int:
        """This run's tiles the scheduler has handed to workers and not yet had back (0 before h's first tiles)."""
        if self._client is None:
            return 0
        return sum(key in self._names for keys in self._client.processing().values() for key in keys)

    def wait_for_tiles_in_flight(self, at_least: int, timeout_s: float = DASK_IN_FLIGHT_TIMEOUT_S) -> int:
        """Poll until at_least tiles are in flight (or timeout_s passes); the last count seen."""
        deadline, held = time.monotonic() + timeout_s, 0
        while time.monotonic() < deadline:
            held = self.in_flight()
            if held >= at_least:
                break
            time.sleep(POLL_S)
        return held

    def kill_one(self) -> None:
        """SIGKILL one worker process."""
        self._kill(1)

    def kill_all(self) -> None:
        """SIGKILL every worker process at once."""
        self._kill(None)

    def _kill(self, count: int | None) -> None:
        pids: dict[str, int] = self._client.run(os.getpid)  # each worker's own process, not its nanny
        self.victims = sorted(pids)[:count]
        self.killed_at = time.perf_counter()
        for victim in self.victims:
            os.kill(pids[victim], signal.SIGKILL)

    def finished(self, spans: Iterable[Span]) -> None:
        """After the run: what dask lost with the victims, which lost tiles ran again, when the last one ended."""
        if self._client is None:
            return
        blurs = [span for span in spans if span.stage == "blur"]
        blurred = {(span.image, span.tile) for span in blurs}
        self.expected, self.missing = len(self._names), len(set(self._names.values()) - blurred)
        self.done_twice = len(blurs) - len(blurred)
        for image in {name for name, _ in self._names.values()}:
            tiles = {tile for name, tile in self._names.values() if name == image}
            done = [span.tile for span in blurs if span.image == image]
            self._per_image[image] = (len(tiles), len(tiles - set(done)), len(done) - len(set(done)))
        if self.killed_at is None:
            return
        for _, event in self._client.get_events("all"):
            if event.get("action") == "remove-worker" and event.get("worker") in self.victims:
                self.lost |= {self._names[key] for key in event["processing-tasks"] if key in self._names}
        again = [span for span in blurs if (span.image, span.tile) in self.lost and span.start >= self.killed_at]
        self.redone = len({(span.image, span.tile) for span in again})
        self.recovered_at = max((span.end for span in again), default=None)


def kill_one_dask_worker(faults: DaskFaults) -> None:
    """Chaos scenario "one-worker": once every worker holds a tile, SIGKILL one; its nanny restarts it."""
    faults.wait_for_tiles_in_flight(at_least=faults.workers)
    faults.kill_one()


def kill_every_dask_worker(faults: DaskFaults) -> None:
    """Chaos scenario "workers": once every worker holds a tile, SIGKILL them all; their nannies restart them."""
    faults.wait_for_tiles_in_flight(at_least=faults.workers)
    faults.kill_all()


DASK_SCENARIOS: dict[str, Callable[[DaskFaults], None]] = {"workers": kill_every_dask_worker,
                                                          "one-worker": kill_one_dask_worker}


# --- the summaries -------------------------------------------------------------------------------------


def _summary(job: Job, letter: str, scenario: str, held: int, reports: dict[str, ImageReport], say: Say) -> Tally:
    lost, hit, unsaved, expected, duplicates, differ = 0, 0, 0, 0, 0, 0
    for source in job.images:
        report = reports[source.name]
        target = output_path(job.config.output_dir, job.letter, source.name)
        present = target.exists()
        differ += present and not _identical_to_a(source, target, job.config)
        say(f"{source.name}: expected={report.expected} processed={report.processed} missing={report.missing} "
            f"duplicates={report.duplicates} output={'present' if present else 'absent'}"
            + (f" ({report.reason})" if report.expected == 0 else ""))
        lost, hit, unsaved = lost + report.missing, hit + (report.missing > 0), unsaved + (not present)
        expected, duplicates = expected + report.expected, duplicates + report.duplicates
    if differ:
        say(f"RESULT: {differ} saved outputs differ from a's pixels.")
    if lost:
        say(f"RESULT: tile loss: {lost} tiles missing in {hit} of {len(job.images)} images. {GUARANTEES[letter]}")
    elif unsaved:
        say(f"RESULT: no tile lost, but {unsaved} of {len(job.images)} images not saved (reasons above).")
    else:
        say(f"RESULT: no missing tiles detected; {duplicates} tiles done twice. {GUARANTEES[letter]}")
    return Tally(scenario, letter, len(job.images), expected, held, lost, duplicates, unsaved, differ)


def _identical_to_a(source: ImageSource, output: Path, config: RunConfig) -> bool:
    """Whether output has exactly the pixels a makes of source (a whole image blurred on one thread)."""
    try:
        expected = blur(load_image(source.path, config.max_pixels).pixels, config.kernel_size,
                        truncate=config.truncate, method=config.kernel)
        return np.array_equal(load_image(output, config.max_pixels).pixels, expected)
    except ImageError:
        return False


def _side_by_side(tallies: Sequence[Tally], say: Say) -> None:
    say("\nscenario     approach  images  tiles expected  in flight at kill  lost  done twice  images not saved  "
        "saved but not a's pixels  recovery_s")
    for t in tallies:
        recovery = "-" if t.recovery_s is None else f"{t.recovery_s:.3f}"
        say(f"{t.scenario:11s}  {t.letter:8s}  {t.images:6d}  {t.expected:14d}  {t.in_flight:17d}  {t.missing:4d}  "
            f"{t.duplicates:10d}  {t.unsaved:16d}  {t.differ:24d}  {recovery:>10s}")
    say("recovery_s: from the kill until the last tile in flight at it was done again; - where nothing was killed, "
        "or the approach cannot tell which tiles its workers held (e)")


def _document(config: RunConfig, letters: Sequence[str], scenarios: Sequence[str], tallies: Sequence[Tally]) -> dict:
    plain = {**settings_of(config), "chaos": list(letters), "chaos_scenarios": list(scenarios)}
    return {"kind": "chaos", "config": plain, "chaos": [asdict(tally) for tally in tallies]}


def _draw(doc: dict, folder: Path) -> Path:
    from visualize.charts import draw_chaos  # matplotlib is slow to import: only when drawing

    return draw_chaos(doc, folder / "chaos.png")


ROLES_BY_LETTER: dict[str, Roles] = {  # j's are made for its RabbitMQ node: _deployed
    "e": e_naive_queue.ROLES, "f": f_reliable_queue.ROLES, "g": g_service.ROLES}
JOB_QUEUES: dict[str, Callable[[Board, str, Settings], WorkQueue]] = {  # e: none that can tell what workers hold
    "f": f_reliable_queue.jobs_queue, "g": g_service.jobs_queue}  # j's is in its roles: Roles.jobs_queue
GUARANTEES = {
    "e": "e is at-most-once: a tile popped by a worker that is killed is gone from Redis, and nothing sends it again.",
    "f": "f is at-least-once: a killed worker's tiles wait on its processing list until it, restarted, or a "
         "reaper hands them back.",
    "g": "g is at-least-once: a killed worker's tiles stay pending in the consumer group until it, restarted, "
         "claims them back or another worker takes them over (XAUTOCLAIM).",
    "h": "h is at-least-once: the scheduler reruns, from the task graph, every tile a dead worker was running or "
         "had queued.",
    "j": "j is at-least-once: RabbitMQ requeues a worker's unacked tile as soon as its connection closes (a kill), "
         "or its AMQP heartbeats stop (a hang).",
}
SCENARIOS: dict[str, Callable[[Cluster, str, Say], Kill]] = {
    "workers": kill_every_worker,
    "one-worker": kill_one_worker,
    "assembler": kill_the_assembler,
    "coordinator": kill_the_coordinator,
    "broker": restart_the_broker,
    "junk": push_junk,
    "hung": hang_one_worker,
}
