"""a — Sequential: one image at a time, load -> blur -> save, on one thread.

The baseline every other approach is timed and checked against.  Its timeline is a staircase: nothing
overlaps, so the wall time is simply the sum of every load, blur and save.
"""

from approaches.core.errors import ImageError
from approaches.core.images import load_image, output_path, save_image
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.kernel import blur
from approaches.core.trace import Tracer

LANE = "main"


def run(job: Job, tracer: Tracer) -> Outcome:
    config, outcome = job.config, Outcome()
    for source in job.images:
        try:
            with tracer.span(LANE, "load", source.name):
                image = load_image(source.path)
            with tracer.span(LANE, "blur", source.name):
                pixels = blur(image.pixels, config.kernel_size, truncate=config.truncate, method=config.kernel)
            target = output_path(config.output_dir, job.letter, source.name)
            with tracer.span(LANE, "save", source.name):
                save_image(pixels, target, config.png_level, encoder=config.png_encoder)
        except ImageError as error:
            outcome.failed.append(Failure(str(source.path), error.reason))
        else:
            outcome.saved.append(Saved(source.name, source.path, target, image.width, image.height, image.mode))
        job.progress()
    return outcome
