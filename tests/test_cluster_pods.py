"""Pods: threads and processes that start, report, crash where they are killed, and restart."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from approaches.cluster.pods import Life, Pod, running

pytestmark = pytest.mark.timeout(60)


def counting(life: Life, *, steps: int, pause_s: float = 0.0) -> dict:
    """Pod target: record a span per step, passing a fault point after each."""
    life.ready()
    for step in range(steps):
        with life.tracer.span(life.name, "blur", "img", step):
            life.sleep(pause_s)
        life.checkpoint(f"step-{step}")
    return {"steps": steps, "pid": os.getpid()}


def chatty(life: Life, *, size: int) -> str:
    """Pod target: a report far larger than a pipe's buffer."""
    return "x" * size


def test_a_thread_pod_reports_its_start_its_spans_and_its_result():
    pod = Pod("worker-1", counting, {"steps": 3}, process=False)
    with running([pod]):
        assert pod.wait(10)
    assert pod.report.result == {"steps": 3, "pid": os.getpid()}
    stages = [(span.lane, span.stage, span.tile) for span in pod.report.spans]
    assert stages == [("worker-1", "start", None)] + [("worker-1", "blur", step) for step in range(3)]


def test_a_thread_pod_dies_at_the_fault_point_its_hook_names_and_restarts_afresh():
    # Given a hook that crashes worker-1 right after its second step, the first time only
    crashes = []

    def hook(name: str, point: str) -> bool:
        if point == "step-1" and not crashes:
            crashes.append(name)
            return True
        return False

    pod = Pod("worker-1", counting, {"steps": 3}, process=False, hook=hook)
    with running([pod]):
        assert pod.wait(10)
        # Then it reported nothing, like a crashed container
        assert crashes == ["worker-1"] and pod.report is None
        # And restarted, it runs from the beginning to the end
        pod.restart()
        assert pod.wait(10)
    assert pod.restarts == 1 and pod.report.result["steps"] == 3


def test_killing_a_sleeping_thread_pod_ends_it_at_once():
    pod = Pod("worker-1", counting, {"steps": 1, "pause_s": 30.0}, process=False)
    with running([pod]):
        time.sleep(0.1)
        started = time.perf_counter()
        pod.kill()
        assert time.perf_counter() - started < 1.0 and not pod.alive and pod.report is None


@pytest.mark.timeout(90)
def test_a_process_pod_runs_elsewhere_dies_by_sigkill_and_restarts():
    pod = Pod("worker-1", counting, {"steps": 2, "pause_s": 30.0}, process=True)
    with running([pod]):
        assert not pod.wait(0.5)  # busy in its long step
        pod.kill()
        assert pod.exitcode == -signal.SIGKILL and pod.report is None
        pod.restart()
        assert pod.alive and pod.exitcode is None
    assert pod.exitcode == -signal.SIGKILL  # running() killed it at the end


@pytest.mark.timeout(90)
def test_a_process_pod_reports_as_json_even_beyond_the_pipe_buffer():
    short = Pod("worker-1", counting, {"steps": 2}, process=True)
    big = Pod("worker-2", chatty, {"size": 1 << 20}, process=True)
    with running([short, big]):
        assert short.wait(60) and big.wait(60)
    assert short.report.result["pid"] != os.getpid() and len(big.report.result) == 1 << 20
    start = short.report.spans[0]
    assert start.stage == "start" and start.end > start.start  # spawning a fresh interpreter costs something


def test_only_plain_values_reach_a_pod():
    with pytest.raises(TypeError):
        Pod("worker-1", counting, {"steps": np.zeros(3)}, process=True)
    with pytest.raises(ValueError, match="hooks"):
        Pod("worker-1", counting, {"steps": 1}, process=True, hook=lambda name, point: False)


def test_running_kills_every_pod_when_the_block_fails():
    pods = [Pod(f"worker-{i}", counting, {"steps": 1, "pause_s": 30.0}, process=False) for i in (1, 2)]
    with pytest.raises(KeyboardInterrupt), running(pods):
        raise KeyboardInterrupt
    assert not any(pod.alive for pod in pods)
    assert not [t for t in threading.enumerate() if t.name.startswith("worker-")]


def test_a_thread_pod_s_spans_are_heard_as_they_happen_even_when_it_is_killed():
    # Given a thread pod whose listener notes each span, killed after its second step
    heard = []
    pod = Pod("worker-1", counting, {"steps": 5}, process=False, on_span=heard.append,
              hook=lambda name, point: point == "step-1")
    with running([pod]):
        assert pod.wait(10)
    # Then the listener heard the two steps the pod's lost report would have held
    assert pod.report is None and [(span.stage, span.tile) for span in heard] == [("blur", 0), ("blur", 1)]


def test_a_process_pod_takes_no_span_listener():
    with pytest.raises(ValueError, match="only thread pods"):
        Pod("worker-1", counting, {"steps": 1}, process=True, on_span=print)
