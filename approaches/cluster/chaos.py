"""Fault scenarios against the queue approaches, each with a summary of only what it measured.

``run_all.py --chaos e`` is the original course's tile-loss demo, made truthful; ``--chaos e,f`` runs the
same faults against each approach named and sets their summaries side by side:

1. the approach runs under a fresh run id (so fresh keys) with slow workers, TILE_DELAY_S per tile;
2. once at least one tile per worker is in flight (taken by a worker, not yet back as a result), every
   worker pod is killed (SIGKILL for a process, the next fault point for a thread), then restarted;
3. the restarted workers finish the queue; the assembler saves each image that is whole and, give_up_s
   without progress, reports the others incomplete;
4. per image: expected (tiles in its plan), processed (distinct tiles that came back), missing,
   duplicates, and whether its output file is on disk; then a RESULT line.  The exit status is 1 when
   tiles were lost, as in the original.

e loses the tiles its killed workers held; f hands them to the restarted workers and loses none.
The original demo read keys that earlier runs had left behind (it had no run id), so it could report a
loss that never happened, and looked for its input in a folder the coordinator could not see.  Here
every number comes from this run's keys, and outputs go to <output>/chaos-<letter>/, cleared of this
run's images first, so "present" can only mean this run saved it.
"""

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from approaches import e_naive_queue, f_reliable_queue
from approaches.cluster.broker import open_broker
from approaches.cluster.deployment import Cluster, launched
from approaches.cluster.wire import ImageReport
from approaches.core.config import CHAOS_APPROACHES, RunConfig
from approaches.core.images import ImageSource, output_path
from approaches.core.job import Job
from approaches.core.trace import Tracer

TILE_DELAY_S = 0.1  # per tile, per worker: long enough that a kill finds every worker holding one
GIVE_UP_S = 5.0  # longer than a worker process takes to restart, or the assembler gives up while it boots
IN_FLIGHT_TIMEOUT_S = 60.0  # spawning worker processes on a busy machine can take a while
POLL_S = 0.01

Say = Callable[[str], None]


def chaos(config: RunConfig, sources: Sequence[ImageSource]) -> int:
    """run_all.py --chaos e,f: run the scenario against each approach named, print the summaries; exit status."""
    logging.basicConfig(level=logging.WARNING if config.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    tallies = [SCENARIOS[letter](config, sources) for letter in config.chaos]
    if len(tallies) > 1:
        _side_by_side(tallies, print)
    return 1 if any(tally.missing or tally.unsaved for tally in tallies) else 0


@dataclass(frozen=True)
class Tally:
    """One approach's totals under the scenario."""

    letter: str
    images: int
    expected: int
    missing: int
    duplicates: int
    unsaved: int


def tile_loss(config: RunConfig, sources: Sequence[ImageSource], *, letter: str = "e",
              tile_delay_s: float = TILE_DELAY_S, give_up_s: float = GIVE_UP_S, say: Say = print) -> Tally:
    """Kill every worker of the approach while tiles are in flight, restart them, and report what was lost."""
    roles = ROLES[letter]
    job = Job(config, tuple(sources), f"chaos-{letter}")
    for source in sources:
        output_path(config.output_dir, job.letter, source.name).unlink(missing_ok=True)
    with open_broker(config.broker) as broker, launched(broker, job, roles, give_up_s=give_up_s,
                                                        tile_delay_s=tile_delay_s) as cluster:
        names = ", ".join(pod.name for pod in cluster.workers)
        say(f"chaos {letter}: run {cluster.board.run} on {broker.shown}: {len(cluster.workers)} worker pods "
            f"({'processes' if broker.pods_are_processes else 'threads'}), {tile_delay_s:g} s per tile")
        held = _wait_for_tiles_in_flight(cluster, at_least=len(cluster.workers))
        how = "SIGKILL" if broker.pods_are_processes else "each dies at its next fault point"
        say(f"{held} tiles in flight: killing {names} ({how})")
        for pod in cluster.workers:
            pod.kill()
        for pod in cluster.workers:
            pod.restart()
        say(f"restarted {names}; waiting for the assembler to finish or give up ({give_up_s:g} s)")
        _, reports = cluster.collect(Tracer())
        jobs, results = cluster.left_in_queues()
    say(f"left in the queues: jobs={jobs} results={results}")
    return _summary(job, letter, reports, say)


def _wait_for_tiles_in_flight(cluster: Cluster, at_least: int) -> int:
    """Poll until at_least tiles are in flight (or IN_FLIGHT_TIMEOUT_S passes); the last count seen."""
    deadline, held = time.monotonic() + IN_FLIGHT_TIMEOUT_S, 0
    while time.monotonic() < deadline:
        held = cluster.tiles_in_flight() or 0
        if held >= at_least:
            break
        time.sleep(POLL_S)
    return held


def _summary(job: Job, letter: str, reports: dict[str, ImageReport], say: Say) -> Tally:
    lost, hit, unsaved, expected, duplicates = 0, 0, 0, 0, 0
    for source in job.images:
        report = reports[source.name]
        present = output_path(job.config.output_dir, job.letter, source.name).exists()
        say(f"{source.name}: expected={report.expected} processed={report.processed} missing={report.missing} "
            f"duplicates={report.duplicates} output={'present' if present else 'absent'}"
            + (f" ({report.reason})" if report.expected == 0 else ""))
        lost, hit, unsaved = lost + report.missing, hit + (report.missing > 0), unsaved + (not present)
        expected, duplicates = expected + report.expected, duplicates + report.duplicates
    if lost:
        say(f"RESULT: tile loss: {lost} tiles missing in {hit} of {len(job.images)} images. {GUARANTEES[letter]}")
    elif unsaved:
        say(f"RESULT: no tile lost, but {unsaved} of {len(job.images)} images not saved (reasons above).")
    else:
        say(f"RESULT: no missing tiles detected; {duplicates} tiles done twice. {GUARANTEES[letter]}")
    return Tally(letter, len(job.images), expected, lost, duplicates, unsaved)


def _side_by_side(tallies: Sequence[Tally], say: Say) -> None:
    say("\napproach  images  tiles expected  lost  done twice  images not saved")
    for t in tallies:
        say(f"{t.letter:8s}  {t.images:6d}  {t.expected:14d}  {t.missing:4d}  {t.duplicates:10d}  {t.unsaved:16d}")


ROLES = {"e": e_naive_queue.ROLES, "f": f_reliable_queue.ROLES}
GUARANTEES = {
    "e": "e is at-most-once: a tile popped by a worker that is killed is gone from Redis, and nothing sends it again.",
    "f": "f is at-least-once: a killed worker's tiles wait on its processing list until it, restarted, or a "
         "reaper hands them back.",
}
SCENARIOS: dict[str, Callable[[RunConfig, Sequence[ImageSource]], Tally]] = {
    letter: partial(tile_loss, letter=letter) for letter in CHAOS_APPROACHES}
