"""The page end to end, in a real headless browser (Debian's chromium and chromium-driver, through selenium):
upload two images, wait for the job to end, download the outputs the page links, and check a's pixels.

Skipped where no browser is installed, with the command that installs it; under CI (CI=true) a missing browser
fails instead, since .ci/run installs it."""

import os
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from approaches.core.images import load_image
from approaches.core.kernel import blur
from approaches.web import browser
from approaches.web.jobs import JobStore
from tests.conftest import photo

WAIT_S = 30.0


@pytest.fixture
def chromium():
    if (missing := browser.missing()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {missing}")
        pytest.skip(missing)
    with browser.chromium() as driver:
        yield driver


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_the_page_blurs_two_uploads_to_a_s_pixels_and_links_them(chromium, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    inputs = [tmp_path / "first.png", tmp_path / "second.png"]
    Image.fromarray(photo(90, 120, 3, seed=4)).save(inputs[0])
    Image.fromarray(photo(64, 48, 4, seed=5)).save(inputs[1])
    with browser.served(JobStore(tmp_path / "web")) as url:
        chromium.get(url)
        wait = WebDriverWait(chromium, WAIT_S)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#approach option"))
        Select(chromium.find_element(By.ID, "approach")).select_by_value("c")
        chromium.find_element(By.NAME, "kernel_size").clear()
        chromium.find_element(By.NAME, "kernel_size").send_keys("9")
        chromium.find_element(By.ID, "files").send_keys("\n".join(str(path) for path in inputs))
        chromium.find_element(By.ID, "start").click()
        wait.until(lambda d: d.find_element(By.ID, "state").get_attribute("class") in ("done", "failed")
                   or d.find_element(By.ID, "error").text)
        assert chromium.find_element(By.ID, "state").get_attribute("class") == "done", \
            chromium.find_element(By.ID, "state").text + chromium.find_element(By.ID, "error").text
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "a.download")) >= 2)
        links = {a.text: a.get_attribute("href") for a in chromium.find_elements(By.CSS_SELECTOR, "a.download")}
        assert "every output has exactly a's pixels" in chromium.find_element(By.ID, "log").text
        for index, path in enumerate(inputs):
            href = links[f"{index + 1:02d}_{path.stem}_blurred.png"]
            target = tmp_path / f"downloaded-{index}.png"
            with urllib.request.urlopen(href, timeout=10) as response:
                target.write_bytes(response.read())
            assert np.array_equal(load_image(target).pixels, blur(load_image(path).pixels, 9))
