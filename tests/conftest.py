"""Small generated images shared by the tests, and the suite's command line as the tests run it (one pass)."""

import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from approaches.cluster.amqp import AmqpBroker, open_amqp, unavailable
from approaches.core.kernel import warm_up
from approaches.core.settings import Settings
from approaches.harness import cli

OWN_TMPDIR = "BLUR_TESTS_TMPDIR"  # set by the test run that made the private TMPDIR (xdist's workers inherit it)


def pytest_configure(config: pytest.Config) -> None:
    """Run the tests in a private TMPDIR (a short path: Unix sockets live there), so that what they leave behind is
    found, whatever else the machine's /tmp holds, and named at the end: `pytest_sessionfinish`.  Each xdist
    worker gets a folder of its own in it, so that what one test looks for there is its own."""
    if OWN_TMPDIR not in os.environ:
        os.environ[OWN_TMPDIR] = os.environ["TMPDIR"] = tempfile.mkdtemp(prefix="blur-tests-")
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["TMPDIR"] = os.path.join(os.environ[OWN_TMPDIR], worker)
        os.makedirs(os.environ["TMPDIR"], exist_ok=True)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    if not worker:  # compile the kernels once, here, if numba's cache is cold, not once in every xdist worker
        warm_up()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run, naming each, if the tests left anything in TMPDIR beside pytest's own folders."""
    if os.environ.get("TMPDIR") != os.environ.get(OWN_TMPDIR):
        return  # an xdist worker: the run that made the folder checks it once every worker is done
    folder = os.environ[OWN_TMPDIR]
    if left := list(_left_in(folder)):
        session.config.left_in_tmpdir = left
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(folder, ignore_errors=True)


def _left_in(folder: str) -> Iterator[str]:
    """What is in folder, and in each xdist worker's folder in it, beside pytest's own."""
    for name in sorted(os.listdir(folder)):
        if re.fullmatch(r"gw\d+", name):
            yield from (os.path.join(name, inner) for inner in _left_in(os.path.join(folder, name)))
        elif not name.startswith("pytest-of-"):
            yield name


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if left := getattr(config, "left_in_tmpdir", None):
        terminalreporter.write_line(f"FAILED: the tests left in TMPDIR: {', '.join(left)}", red=True)


def main(argv: Sequence[str], env: Mapping[str, str] | None = None, settings: Settings | None = None) -> int:
    """run_all.py's main with --quick for what times approaches (run, sweep): one timed pass, no warm-up.  The
    default method (a warm-up and three timed runs of each approach) would make every test that runs the suite
    four times slower, and what it checks is the same every run; a flag given with it (--repeat N) still has its
    say, and a test of the default method calls cli.main itself."""
    command, *rest = cli.subcommand_first(argv)
    return cli.main([command, *(["--quick"] if command in ("run", "sweep", "crossover") else []), *rest], env, settings)


def photo(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with noise and a sharp edge: blurring it changes many pixels by many levels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 255 // max(width - 1, 1) + y * 97 // max(height - 1, 1)) % 256
    pixels = np.stack([(base + 60 * c) % 256 for c in range(channels)], axis=-1).astype(np.int32)
    pixels[: height // 2, : width // 3] = 255 - pixels[: height // 2, : width // 3]
    pixels += rng.integers(-20, 21, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Three small images of different modes in a fresh folder."""
    directory = tmp_path / "input"
    directory.mkdir()
    Image.fromarray(photo(70, 90, 4, seed=1)).save(directory / "one.png")
    Image.fromarray(photo(33, 41, 3, seed=2)).save(directory / "two.png")
    Image.fromarray(photo(20, 25, 1, seed=3)[..., 0]).save(directory / "three.png")
    return directory


@pytest.fixture
def short_tmp(monkeypatch) -> Iterator[Path]:
    """A TMPDIR of its own for the test and what it starts, with a short path: a Unix socket's must stay under
    about 100 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="t-"))
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def ctrl_c_as_in_a_terminal() -> None:
    """preexec_fn for a child a test presses Ctrl-C on: SIGINT back to its default.  A shell starts a background
    job with SIGINT ignored, and a child inherits that, so a test run started so would never see Ctrl-C work."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in this process during the test, even in a run started with it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def grouped_as_marked(request: pytest.FixtureRequest) -> None:
    """Fail a test whose xdist_group an xdist worker ignored (pytest 9.2 with pytest-xdist 3.8 does, silently:
    pytest-xdist#1386): j's tests would boot a RabbitMQ node on every worker instead of one."""
    if (getattr(request.config.option, "loadgroup", False) and request.node.get_closest_marker("xdist_group")
            and "@" not in request.node.nodeid):
        pytest.fail(f"--dist loadgroup ignored this test's xdist_group under pytest {pytest.__version__}: "
                    "install the versions of requirements.lock")


@pytest.fixture(scope="session")
def rabbit() -> Iterator[AmqpBroker]:
    """The RabbitMQ of approach j's tests: AMQP_URL's broker, or one private node for the whole session (it takes
    seconds to boot).  Where neither can be had, j's tests are skipped with the install command, except under
    CI=true, where that fails them: CI installs rabbitmq-server, and a skip there would hide that j went untested."""
    url = os.environ.get("AMQP_URL")
    if (why := unavailable(url)) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, and {why}")
        pytest.skip(why)
    with open_amqp(url) as broker:
        yield broker
