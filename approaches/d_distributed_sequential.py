"""d — Distributed sequential: approach a's loop, run in one pod, as the original ran it as a Kubernetes Job.

The work is exactly a's, over the same input and output folders (the Job's shared volume); what is new
is where it runs.  The pod is a fresh process, spawned as a container is started: it imports Python,
numpy and numba and loads the compiled kernel before its first image.  That start-up is its own "start"
span, apart from the work, so the timeline shows what "just run it in a pod" costs.  d needs no broker:
nothing is queued, and one pod does everything, so it is a process whatever --broker says.

The pod gets only plain values (paths, kernel size, ...) and reports its spans and outcome as JSON;
this side checks the report against its own list of inputs and names every output itself.
"""

from pathlib import Path

from approaches import a_sequential
from approaches.cluster.pods import Life, Pod, running
from approaches.core.config import RunConfig
from approaches.core.images import ImageSource, output_path
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.kernel import warm_up
from approaches.core.trace import Tracer

POD = a_sequential.LANE  # the pod's start and a's stages share one lane: one line on the timeline


def run(job: Job, tracer: Tracer) -> Outcome:
    config = job.config
    pod = Pod(POD, sequential_pod, {
        "images": [[str(source.path), source.name] for source in job.images], "output_dir": str(config.output_dir),
        "letter": job.letter, "kernel_size": config.kernel_size, "png_level": config.png_level,
        "png_encoder": config.png_encoder,
        "truncate": config.truncate, "kernel": config.kernel, "max_pixels": config.max_pixels}, process=True)
    with running([pod]):
        pod.wait()
    for _ in job.images:
        job.progress()
    if pod.report is None:
        reason = f"the pod ended without a report (exit code {pod.exitcode})"
        return Outcome(failed=[Failure(str(source.path), reason) for source in job.images])
    tracer.extend(pod.report.spans)
    try:
        return _outcome(pod.report.result, job)
    except (KeyError, TypeError, ValueError) as error:
        reason = f"unreadable pod report ({error!r})"
        return Outcome(failed=[Failure(str(source.path), reason) for source in job.images])


def sequential_pod(life: Life, *, images: list[list[str]], output_dir: str, letter: str, kernel_size: int,
                   png_level: int, png_encoder: str, truncate: bool, kernel: str, max_pixels: int) -> dict:
    """Inside the pod: load the kernel, then a's loop over every image; return what happened, as plain data."""
    config = RunConfig(output_dir=Path(output_dir), kernel_size=kernel_size, png_level=png_level,
                       png_encoder=png_encoder, truncate=truncate, kernel=kernel, max_pixels=max_pixels)
    warm_up(kernel_size, method=kernel)  # loading the compiled kernel is part of starting up
    life.ready()
    sources = tuple(ImageSource(Path(path), name) for path, name in images)
    outcome = a_sequential.run(Job(config, sources, letter), life.tracer)
    return {"saved": [[s.name, s.width, s.height, s.mode] for s in outcome.saved],
            "failed": [[f.path, f.reason] for f in outcome.failed]}


def _outcome(result: dict, job: Job) -> Outcome:
    """Rebuild the pod's outcome from this side's own sources; an image the report does not account for fails."""
    by_name = {source.name: source for source in job.images}
    saved = {name: (width, height, mode) for name, width, height, mode in result["saved"] if name in by_name}
    reasons = {path: reason for path, reason in result["failed"]}
    outcome = Outcome()
    for source in job.images:
        if source.name in saved:
            width, height, mode = saved[source.name]
            target = output_path(job.config.output_dir, job.letter, source.name)
            outcome.saved.append(Saved(source.name, source.path, target, width, height, mode))
        else:
            outcome.failed.append(Failure(str(source.path), reasons.get(str(source.path), "not in the pod's report")))
    return outcome
