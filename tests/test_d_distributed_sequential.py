"""d: a's loop in one pod process gives a's pixels; the pod's start-up is a span of its own."""

from pathlib import Path

import numpy as np
import pytest

from approaches import d_distributed_sequential
from approaches.core.config import RunConfig
from approaches.core.images import find_images, load_image
from approaches.core.job import Job
from approaches.core.kernel import blur
from approaches.core.trace import Tracer
from tests.test_images import bad_inputs

pytestmark = pytest.mark.timeout(120)  # a fresh interpreter on a busy 2-core machine


def test_one_pod_process_saves_as_pixels_reports_bad_inputs_and_times_its_start_apart(tmp_path, image_dir):
    reasons = bad_inputs(image_dir)
    config = RunConfig(input_dir=image_dir, output_dir=tmp_path / "out", kernel_size=5)
    tracer = Tracer()
    outcome = d_distributed_sequential.run(Job(config, tuple(find_images(image_dir)), "d"), tracer)
    # Every good image is saved with a's pixels, named by this side
    assert [s.name for s in outcome.saved] == ["one", "three", "two"]
    for saved in outcome.saved:
        assert saved.output == tmp_path / "out" / "d" / f"{saved.name}_blurred.png"
        assert np.array_equal(load_image(saved.output).pixels, blur(load_image(saved.source).pixels, 5))
    # Every bad one is reported with its reason, as a reports it
    failed = {Path(f.path).name: f.reason for f in outcome.failed}
    assert set(failed) == set(reasons) and all(reason in failed[name] for name, reason in reasons.items())
    # The pod's start-up comes first, on its own span, before any image is loaded
    start, *work = tracer.spans
    assert (start.lane, start.stage) == (d_distributed_sequential.POD, "start") and start.seconds > 0
    assert {span.stage for span in work} == {"load", "blur", "save"}
    assert min(span.start for span in work) >= start.end

