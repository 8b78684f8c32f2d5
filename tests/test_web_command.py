"""The page started as a user starts it: `blur-suite serve --port 0` in a process of its own, driven over HTTP.

The other web tests call the app in this process; this one is the command itself, so a start-up that crashes
(werkzeug handed our socket never sets `server_port`) cannot hide behind a test helper's server.
"""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from approaches.core.kernel import blur
from tests.conftest import ctrl_c_as_in_a_terminal, photo

pytestmark = pytest.mark.timeout(120)

BOUND_S = 60.0  # generous: the machine may be busy


def blur_suite() -> list[str]:
    """The console script pip installed beside this interpreter (the command a user types)."""
    script = Path(sys.executable).with_name("blur-suite")
    return [str(script)] if script.exists() else [shutil.which("blur-suite") or "blur-suite"]


def start(data: Path) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([*blur_suite(), "serve", "--port", "0", "--data", str(data)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True,
                              preexec_fn=ctrl_c_as_in_a_terminal)
    line = server.stdout.readline()  # the first line names the URL; a crash closes stdout instead
    found = re.search(r"http://[^/\s]+/", line)
    if found is None:
        server.kill()
        pytest.fail(f"serve printed no URL: {line!r} {server.communicate()[1]}")
    return server, found.group(0)


def stop(server: subprocess.Popen, sig: signal.Signals) -> list[str]:
    """Send sig, and return what serve wrote to stderr beside its access log; its status must be 0 and nothing it
    started may live on."""
    server.send_signal(sig)
    _, err = server.communicate(timeout=BOUND_S)
    assert server.returncode == 0, err
    deadline = time.monotonic() + BOUND_S
    while _group_alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(server.pid), "processes the page started outlived it"
    return [line for line in err.splitlines() if not re.search(r'HTTP/1\.1\S*" \d{3} ', line)]


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def multipart(fields: dict[str, str], files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{filename}"\r\n'
              f"Content-Type: image/png\r\n\r\n".encode() + content + b"\r\n" for filename, content in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=BOUND_S) as response:
        return response.read()


@pytest.mark.slow
def test_serve_prints_its_url_runs_a_job_to_a_s_pixels_and_stops_on_sigterm_with_one_line(tmp_path):
    server, url = start(tmp_path / "web")
    try:
        assert b"<html" in get(url).lower()
        pixels = photo(48, 40, 3, seed=4)
        encoded = io.BytesIO()
        Image.fromarray(pixels).save(encoded, "PNG")
        body, kind = multipart({"approach": "b.threads", "workers": "2", "tile_size": "16", "kernel_size": "5"},
                               [("cat.png", encoded.getvalue())])
        posted = urllib.request.Request(f"{url}jobs", data=body, headers={"Content-Type": kind}, method="POST")
        with urllib.request.urlopen(posted, timeout=BOUND_S) as response:
            assert response.status == 201
            job = json.loads(response.read())["id"]
        deadline = time.monotonic() + BOUND_S
        while (state := json.loads(get(f"{url}jobs/{job}"))["state"]) in ("queued", "running"):
            assert time.monotonic() < deadline, "the job did not end"
            time.sleep(0.1)
        assert state == "done"
        got = np.asarray(Image.open(io.BytesIO(get(f"{url}jobs/{job}/output/0"))))
        assert np.array_equal(got, blur(pixels, 5))
    finally:
        said = stop(server, signal.SIGTERM)
    assert len(said) == 1 and "stopped" in said[0], said


def test_serve_stops_on_ctrl_c_with_one_line_and_status_0(tmp_path):
    server, url = start(tmp_path / "web")
    assert get(f"{url}queue")
    said = stop(server, signal.SIGINT)
    assert len(said) == 1 and "stopped" in said[0], said
