"""Deploying a queue approach: its coordinator, workers and assembler as pods on one broker, and the run's end.

e, f and g differ in what their pods do, not in how they are started, watched and stopped: that is here.
The assembler decides when the run is over (every image the coordinator dealt with has a report on the
board) and leaves the run's summary; then the others get Settings.stop_grace_s to stop by themselves and are
killed after it, and every key of the run is deleted.  If the coordinator dies before queuing everything,
the images it never planned are failed here, so the assembler's give-up clock can run for the others.  A
pod whose code raises (a bug, not a kill) ends the run with its error at once.
"""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from approaches.cluster.board import Board, new_run_id
from approaches.cluster.broker import Broker, BrokerError, connect, open_broker
from approaches.cluster.pods import FaultHook, Pod, SpanListener, running
from approaches.cluster.queues import WorkQueue
from approaches.cluster.wire import ImageReport, State, WireError
from approaches.core.errors import Crashed
from approaches.core.images import output_path
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.settings import Settings
from approaches.core.trace import Tracer

COORDINATOR, ASSEMBLER = "coordinator", "assembler"
POLL_S = 0.25  # how often the run's end is checked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Roles:
    """What each pod of an approach runs; pills: the coordinator ends the queue with a STOP per worker;
    in_flight: how many tiles the workers hold, counted from outside (the chaos demo kills them then)."""

    coordinator: Callable[..., None]
    worker: Callable[..., None]
    assembler: Callable[..., None]
    pills: bool
    in_flight: Callable[["Cluster"], int | None]
    gives_up_after: Callable[[Settings], float]  # the assembler's patience without progress, from the settings
    settled: Callable[["Cluster"], None] | None = None  # called in collect once the pods are stopped (j: see roles)
    ended: Callable[["Cluster"], None] | None = None  # called once the run's keys are deleted (j: remove its queues)
    jobs_queue: Callable[[Board, str, Settings], WorkQueue] | None = None  # j: its job queue, on RabbitMQ


@dataclass
class Cluster:
    """One run's pods on one broker, and the run's board, for whoever started them (run, the chaos demo)."""

    job: Job
    roles: Roles
    broker: Broker
    board: Board
    coordinator: Pod
    workers: list[Pod]
    assembler: Pod
    reports: dict[str, ImageReport] = field(default_factory=dict)  # how each image ended, once collected

    def collect(self, tracer: Tracer) -> tuple[Outcome, dict[str, ImageReport]]:
        """Wait for the assembler to finish, stop the other pods, and say how each image ended."""
        while not self.assembler.wait(POLL_S):
            self._check_crashes()
            if self.coordinator.wait(0) and self.board.coordinated() is None:
                self._coordinator_lost()
        self._check_crashes()
        grace = self.job.config.settings.stop_grace_s
        coordinated = self.coordinator.wait(grace) and self.coordinator.report is not None
        deadline = time.monotonic() + (grace if coordinated else 0.0)
        for pod in (self.coordinator, *self.workers):  # a worker stops by itself (a pill, the run's end) or is killed
            if not pod.wait(max(deadline - time.monotonic(), 0.0)):
                log.warning("%s still running after the run: killed", pod.name)
                pod.kill()
        if self.roles.settled is not None:
            self.roles.settled(self)
        for pod in (self.coordinator, *self.workers, self.assembler):
            if pod.report is not None:  # a killed pod's spans died with it
                tracer.extend(pod.report.spans)
        return self._outcome()

    def _check_crashes(self) -> None:
        """A pod whose code raised (a bug, not a kill) ends the run with its error: its peers would wait
        for it forever, or until they give up."""
        for pod in (self.coordinator, *self.workers, self.assembler):
            if not pod.alive and pod.wait(0) and pod.crashed:
                raise Crashed(f"{pod.name} crashed: {pod.crashed}")

    def _coordinator_lost(self) -> None:
        """The coordinator died before queuing everything: images it never planned are failed, so the
        assembler's give-up clock can run for the ones it did."""
        reports, planned = self.board.reports(), set(self.board.planned())
        for image in range(len(self.job.images)):
            if image not in reports and image not in planned:
                self.board.report(image, ImageReport(State.FAILED, reason="the coordinator died before queuing it"))
        self.board.mark_coordinated(len(self.job.images))

    def _outcome(self) -> tuple[Outcome, dict[str, ImageReport]]:
        """Each input saved or failed, from the run's summary (or, if the assembler died before it could
        write one, from the reports still on the board); an image the run does not account for fails."""
        config, outcome, records = self.job.config, Outcome(), self.records()
        by_name = {}
        for image, source in enumerate(self.job.images):
            report, shape = records.get(image, (ImageReport(State.FAILED, reason="not finished when the assembler "
                                                            "stopped"), None))
            by_name[source.name] = report
            target = output_path(config.output_dir, self.job.letter, source.name)
            if report.state is State.SAVED and target.exists() and shape is not None:
                outcome.saved.append(Saved(source.name, source.path, target, *shape))
            else:
                reason = report.reason or f"reported saved, but {target} is missing"
                outcome.failed.append(Failure(str(source.path), reason))
            self.job.progress()
        self.reports = by_name
        return outcome, by_name

    def records(self) -> dict[int, tuple[ImageReport, tuple[int, int, str] | None]]:
        """image id -> (its report, (width, height, mode) if known)."""
        summary = self.board.summary()
        if summary is None:
            return {image: (report, _shape(self.board, image)) for image, report in self.board.reports().items()}
        records = {}
        for image, fields in summary.get("images", {}).items():
            try:
                report = ImageReport(State(fields["state"]), fields["expected"], fields["processed"],
                                     fields["duplicates"], fields["reason"])
                shape = (fields["width"], fields["height"], fields["mode"]) if "width" in fields else None
                records[int(image)] = (report, shape)
            except (KeyError, TypeError, ValueError):
                continue
        return records

    def left(self) -> dict[str, int]:
        """What was still queued when the run finished (the summary's count), or is queued now."""
        summary = self.board.summary()
        left = summary.get("left") if summary is not None else None
        return left if isinstance(left, dict) else {}

    def tiles_in_flight(self) -> int | None:
        """Tiles taken by a worker and not yet back as a result, as the approach can tell; None: not yet known."""
        return self.roles.in_flight(self)


def _shape(board: Board, image: int) -> tuple[int, int, str] | None:
    try:
        plan = board.plan(image)
    except WireError:
        return None
    return plan.width, plan.height, plan.mode


@contextmanager
def launched(broker: Broker, job: Job, roles: Roles, *, hook: FaultHook | None = None,
             worker_pods: int | None = None, worker_settings: dict[str, Any] | None = None,
             on_span: SpanListener | None = None,
             on_launch: Callable[["Cluster"], None] | None = None) -> Iterator[Cluster]:
    """Start the assembler, the workers, then the coordinator; afterwards kill any still running and
    delete every key of the run.  Every pod gets the job's Settings (a spawned one as plain values).
    worker_pods: how many worker pods (default: config.workers); worker_settings: more for each (g's threads);
    on_span: hears each span of a thread pod as it is recorded (process pods report theirs at their end);
    on_launch: called with the Cluster once its pods are started (the web page's kill button holds it)."""
    config, run_id = job.config, new_run_id()
    settings = config.settings
    plain = {"url": broker.url, "run": run_id, "settings": settings.plain()}
    pod = partial(Pod, process=broker.pods_are_processes, hook=hook, fault=settings.fault,
                  on_span=None if broker.pods_are_processes else on_span)
    cluster = Cluster(
        job,
        roles,
        broker,
        Board(connect(broker.url), run_id),
        coordinator=pod(COORDINATOR, roles.coordinator, {
            **plain, "images": [[str(source.path), source.name] for source in job.images],
            "kernel_size": config.kernel_size, "tile_size": config.tile_size, "max_pixels": config.max_pixels,
            **({"workers": config.workers} if roles.pills else {})}),
        workers=[pod(f"worker-{i}", roles.worker, {**plain, "truncate": config.truncate, "kernel": config.kernel,
                                                   **(worker_settings or {})})
                 for i in range(1, (worker_pods or config.workers) + 1)],
        assembler=pod(ASSEMBLER, roles.assembler, {
            **plain, "output_dir": str(config.output_dir), "letter": job.letter, "png_level": config.png_level,
            "png_encoder": config.png_encoder}),
    )
    try:
        with running([cluster.assembler, *cluster.workers, cluster.coordinator]):
            if on_launch is not None:
                on_launch(cluster)
            yield cluster
    finally:
        cluster.board.delete()
        if roles.ended is not None:
            roles.ended(cluster)


def run(job: Job, tracer: Tracer, roles: Roles, **launch: Any) -> Outcome:
    """Run a queue approach on the job's broker; a broker that cannot be had fails every image with why.
    launch: launched()'s other options."""
    try:
        with open_broker(job.config.broker) as broker, launched(broker, job, roles, **launch) as cluster:
            return cluster.collect(tracer)[0]
    except BrokerError as error:
        return Outcome(failed=[Failure(str(source.path), str(error)) for source in job.images])
