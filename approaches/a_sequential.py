"""a — Sequential: one image at a time, load -> blur -> save, on one thread.

The baseline every other approach is timed and checked against.  Its timeline is a staircase: nothing
overlaps, so the wall time is simply the sum of every load, blur and save.  At most two copies of an image
are held at once, its pixels and the blurred ones: the input is let go before the output is encoded.
"""

import numpy as np

from approaches.core.errors import ImageError
from approaches.core.images import ImageSource, load_image, output_path, save_image
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.kernel import blur
from approaches.core.trace import Tracer

LANE = "main"


def run(job: Job, tracer: Tracer) -> Outcome:
    config, outcome = job.config, Outcome()
    for source in job.images:
        try:
            pixels, mode = _blurred(source, job, tracer)
            target = output_path(config.output_dir, job.letter, source.name)
            with tracer.span(LANE, "save", source.name):
                save_image(pixels, target, config.png_level, encoder=config.png_encoder)
        except ImageError as error:
            outcome.failed.append(Failure(str(source.path), error.reason))
        else:
            outcome.saved.append(Saved(source.name, source.path, target, pixels.shape[1], pixels.shape[0], mode))
        job.progress()
    return outcome


def _blurred(source: ImageSource, job: Job, tracer: Tracer) -> tuple[np.ndarray, str]:
    """The image's blurred pixels and its mode; the input pixels are gone once this returns."""
    config = job.config
    with tracer.span(LANE, "load", source.name):
        image = load_image(source.path, config.max_pixels)
    with tracer.span(LANE, "blur", source.name):
        return blur(image.pixels, config.kernel_size, truncate=config.truncate, method=config.kernel), image.mode
