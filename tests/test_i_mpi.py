"""i: MPI ranks blur row bands with a halo exchange and give a's pixels; a failing rank ends the whole job.

The band plan is proven without MPI, for any image height, rank count and radius, by replaying the
exchange in numpy.  The launches (mpiexec, about a second each on 2 cores) are few, each with several
images: 1, 2 and 3 ranks over images with fewer rows than ranks and bands thinner than the halo.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from approaches import i_mpi
from approaches.cluster import mpi_launch
from approaches.core.config import RunConfig
from approaches.core.images import find_images, load_image
from approaches.core.job import Job
from approaches.core.kernel import blur
from approaches.core.trace import Tracer
from tests.conftest import photo

needs_mpi = pytest.mark.skipif(mpi_launch.mpiexec() is None,
                               reason="mpiexec (the mpich wheel) or mpi4py is not installed")
K = 21  # radius 10: the 5-row and 2-row images below give bands thinner than the halo


def replay_exchange(image: np.ndarray, ranks: int, radius: int) -> list[np.ndarray]:
    """Every rank's held rows after the scatter and every hop of the exchange, as the rank program does it."""
    plan = i_mpi.bands(image.shape[0], ranks)
    rows = [i_mpi.held(plan, rank, radius) for rank in range(ranks)]
    local = [np.full(len(rows[rank]), -1) for rank in range(ranks)]
    for rank, band in enumerate(plan):
        local[rank][band.start - rows[rank].start:band.stop - rows[rank].start] = image[band.start:band.stop]
    for hop in range(1, i_mpi.hops(plan, radius) + 1):
        received = [i_mpi.relayed(plan, rank, radius, hop) for rank in range(ranks)]
        # Every rank sends from what it holds before the hop: the rows must already be there
        messages = []
        for rank, (from_above, from_below) in enumerate(received):
            for sender, wanted in ((rank - 1, from_above), (rank + 1, from_below)):
                if wanted:
                    sent = local[sender][wanted.start - rows[sender].start:wanted.stop - rows[sender].start].copy()
                    assert (sent >= 0).all(), f"rank {sender} passes on rows {wanted} it does not hold at hop {hop}"
                    messages.append((rank, wanted, sent))
        for rank, wanted, sent in messages:
            local[rank][wanted.start - rows[rank].start:wanted.stop - rows[rank].start] = sent
    return local


@given(height=st.integers(1, 60), ranks=st.integers(1, 9), radius=st.integers(0, 25))
def test_the_band_plan_covers_every_row_once_and_the_exchange_fills_every_halo(height, ranks, radius):
    image = np.arange(height)
    plan = i_mpi.bands(height, ranks)
    # The bands cover the image once, as even as possible, empty ones only at the end
    assert [row for band in plan for row in band] == list(range(height))
    assert max(map(len, plan)) - min(map(len, plan)) <= 1
    assert all(not later for band, later in pairwise(plan) if not band)
    # After the exchange each rank holds exactly its band with its halo, cut at the image's edges
    for rank, local in enumerate(replay_exchange(image, ranks, radius)):
        assert list(local) == list(i_mpi.held(plan, rank, radius))


def test_a_band_thinner_than_the_halo_is_filled_in_several_hops():
    # 5 rows on 3 ranks (2, 2, 1 rows), radius 10: the last rank needs rows of rank 0, two hops away
    plan = i_mpi.bands(5, 3)
    assert i_mpi.hops(plan, 10) == 2
    assert [list(local) for local in replay_exchange(np.arange(5), 3, 10)] == [list(range(5))] * 3


def mpi_inputs(directory: Path) -> Path:
    """Images of every mode, with fewer rows than ranks and bands thinner than the halo, and a bad file."""
    directory.mkdir()
    Image.fromarray(photo(70, 90, 4, seed=1)).save(directory / "rgba.png")
    Image.fromarray(photo(5, 41, 3, seed=2)).save(directory / "five_rows.png")
    Image.fromarray(photo(2, 25, 1, seed=3)[..., 0]).save(directory / "two_rows.png")
    Image.fromarray(photo(1, 7, 3, seed=4)).save(directory / "one_row.png")
    (directory / "broken.png").write_bytes(b"not a png")
    return directory


def rank_processes() -> set[int]:
    """Live processes of this test run's MPI jobs of approach i: mpiexec, its proxies and the ranks (zombies are
    ended), known by the run's folder in this TMPDIR on their command line (mpiexec's) or their parent's."""
    here = tempfile.gettempdir().encode()
    found, parents = set(), {}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and (here in command or b"hydra_pmi_proxy" in command):
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if here in command:
                found.add(int(entry.name))
    for pid, parent in parents.items():  # a proxy's parent is mpiexec
        if parent in found:
            found.add(pid)
    return found


def rank_processes_end(before: set[int]) -> bool:
    """Whether every MPI process started since ``before`` has ended, waiting up to 10 s for them to exit.

    mpiexec returns once it has signalled its ranks; a rank it killed can take a moment to finish exiting.
    """
    deadline = time.monotonic() + 10
    while rank_processes() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    return not rank_processes() - before


@needs_mpi
@pytest.mark.timeout(120)
@pytest.mark.parametrize("ranks", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_ranks_save_as_pixels_for_every_shape_report_a_bad_image_and_draw_a_lane_per_rank(tmp_path, ranks):
    inputs = mpi_inputs(tmp_path / "input")
    config = RunConfig(input_dir=inputs, output_dir=tmp_path / "out", kernel_size=K, workers=ranks)
    tracer = Tracer()
    outcome = i_mpi.run(Job(config, tuple(find_images(inputs)), "i"), tracer)
    # Every good image is saved with a's pixels, named by this side
    assert [s.name for s in outcome.saved] == ["five_rows", "one_row", "rgba", "two_rows"]
    for saved in outcome.saved:
        assert saved.output == tmp_path / "out" / "i" / f"{saved.name}_blurred.png"
        assert np.array_equal(load_image(saved.output).pixels, blur(load_image(saved.source).pixels, K))
    # The bad image fails alone, with its reason
    assert [(Path(f.path).name, f.reason) for f in outcome.failed] == [("broken.png", "not an image Pillow can read")]
    # Each rank has a lane: its start-up first, then the bulk-synchronous steps; rank 0 also loads and saves
    lanes = {span.lane for span in tracer.spans}
    assert lanes == {f"rank-{rank}" for rank in range(ranks)}
    for lane in lanes:
        start, *work = sorted((s for s in tracer.spans if s.lane == lane), key=lambda s: s.start)
        assert start.stage == "start" and start.seconds > 0 and min(s.start for s in work) >= start.end
        expected = {"wait", "scatter", "exchange", "blur", "gather"} | ({"load", "save"} if lane == "rank-0" else set())
        assert {span.stage for span in work} == expected


@needs_mpi
@pytest.mark.timeout(120)
def test_a_rank_that_fails_ends_the_whole_job_with_one_line_and_leaves_no_process(tmp_path):
    inputs = mpi_inputs(tmp_path / "input")
    config = RunConfig(input_dir=inputs, output_dir=tmp_path / "out", kernel_size=K, workers=2)
    before = rank_processes()
    outcome = i_mpi.run(Job(config, tuple(find_images(inputs)), "i"), Tracer(), fail_rank=1)
    # No image is saved: MPI has no recovery; every image names the failed rank's reason, in one line
    assert outcome.saved == []
    reasons = {failure.reason for failure in outcome.failed}
    assert len(outcome.failed) == 5 and len(reasons) == 1
    (reason,) = reasons
    assert reason.startswith("rank 1: FailedOnPurpose: rank 1 failed on purpose") and "\n" not in reason
    # mpiexec ended every rank
    assert rank_processes_end(before)


@needs_mpi
@pytest.mark.timeout(120)
def test_interrupting_a_run_stops_mpiexec_and_every_rank(tmp_path, ctrl_c_raises):
    inputs = mpi_inputs(tmp_path / "input")
    config = RunConfig(input_dir=inputs, output_dir=tmp_path / "out", kernel_size=K, workers=2)
    before = rank_processes()
    finished = threading.Event()

    def press_ctrl_c_once_the_ranks_run() -> None:
        deadline = time.monotonic() + 60
        while not rank_processes() - before and time.monotonic() < deadline and not finished.is_set():
            time.sleep(0.02)
        if not finished.is_set():  # never into a later test
            os.kill(os.getpid(), signal.SIGINT)

    pressing = threading.Thread(target=press_ctrl_c_once_the_ranks_run)
    pressing.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            i_mpi.run(Job(config, tuple(find_images(inputs)), "i"), Tracer())
    finally:
        finished.set()
        pressing.join()
    assert rank_processes_end(before)


HARNESS = """
import sys
import tempfile
from pathlib import Path
from approaches import i_mpi
from approaches.core.config import RunConfig
from approaches.core.images import find_images
from approaches.core.job import Job
from approaches.core.trace import Tracer
inputs, output = Path(sys.argv[1]), Path(sys.argv[2])
config = RunConfig(input_dir=inputs, output_dir=output, kernel_size=21, workers=2)
i_mpi.run(Job(config, tuple(find_images(inputs)), "i"), Tracer())
"""


@needs_mpi
@pytest.mark.timeout(120)
@pytest.mark.skipif(sys.platform != "linux", reason="finds the ranks in /proc")
def test_a_harness_killed_outright_takes_mpiexec_and_every_rank_with_it(tmp_path):
    inputs = mpi_inputs(tmp_path / "input")
    before = rank_processes()
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, str(inputs), str(tmp_path / "out")])
    try:
        while not rank_processes() - before and harness.poll() is None:
            time.sleep(0.02)
    finally:
        harness.kill()  # SIGKILL: no exception handler of the harness runs
        harness.wait()
    assert rank_processes_end(before)
    deadline = time.monotonic() + 10  # the guardian removes the job's folder once it has killed mpiexec
    while list(Path(tempfile.gettempdir()).glob("blur-i-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(Path(tempfile.gettempdir()).glob("blur-i-*"))
    # The job was stopped while it started, not left to run on: nothing was saved
    assert not list(tmp_path.glob("out/i/*.png"))


def test_without_mpi_every_image_fails_with_one_line_saying_so(tmp_path, image_dir, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-mpi" / "python"))
    config = RunConfig(input_dir=image_dir, output_dir=tmp_path / "out", workers=2)
    outcome = i_mpi.run(Job(config, tuple(find_images(image_dir)), "i"), Tracer())
    assert outcome.saved == [] and {f.reason for f in outcome.failed} == {mpi_launch.NOT_INSTALLED}


@pytest.mark.parametrize("entry", [[5, 1, 1, "L"], [-1, 1, 1, "L"], ["0", 1, 1, "L"], [True, 1, 1, "L"]])
def test_a_report_naming_an_image_that_is_not_an_input_is_refused(tmp_path, image_dir, entry):
    config = RunConfig(input_dir=image_dir, output_dir=tmp_path / "out")
    job = Job(config, tuple(find_images(image_dir)), "i")
    with pytest.raises(ValueError, match="is not one of the 3 inputs"):
        mpi_launch._outcome({"saved": [entry], "failed": []}, job)


def test_importing_every_lesson_does_not_start_mpi():
    # registry imports every lesson; `from mpi4py import MPI` initialises MPI, so only the rank program's main may
    code = "import sys, approaches.registry; print('mpi4py' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
