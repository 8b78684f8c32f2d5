"""Refresh docs/images/web.png, the docs' picture of the page (docs/web.md): approach e, a worker killed mid-job.

    python docs/screenshot_web.py [PATH]      (needs: apt-get install -y chromium chromium-driver)

Two sample images go through e on memory:// with slowed workers; once tiles are in flight the page's own
"Kill a worker" button is pressed, and the shot is taken when the job has ended: the lost tiles are red holes.
"""

import sys
import tempfile
import time
from pathlib import Path

from approaches.samples import SampleSpec, make_sample
from approaches.web import browser
from approaches.web.jobs import JobStore

WAIT_S = 60.0


def main(target: Path) -> int:
    if (missing := browser.missing()) is not None:
        print(f"screenshot_web: {missing}", file=sys.stderr)
        return 2
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        inputs = []
        for spec in (SampleSpec("harbour", 480, 320, "RGB", 2), SampleSpec("street", 320, 320, "RGB", 3)):
            inputs.append(folder / f"{spec.name}.png")
            make_sample(spec).save(inputs[-1])
        with browser.served(JobStore(folder / "web")) as url, browser.chromium(1200, 1000) as driver:
            driver.get(url)
            wait = WebDriverWait(driver, WAIT_S)
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#approach option"))
            Select(driver.find_element(By.ID, "approach")).select_by_value("e")
            Select(driver.find_element(By.NAME, "tile_size")).select_by_visible_text("64")
            driver.find_element(By.NAME, "workers").clear()
            driver.find_element(By.NAME, "workers").send_keys("3")
            driver.find_element(By.ID, "files").send_keys("\n".join(str(path) for path in inputs))
            driver.find_element(By.ID, "start").click()
            wait.until(lambda d: d.find_element(By.ID, "state").get_attribute("class") == "running")
            time.sleep(1.0)  # let a few tiles come back first
            driver.find_element(By.CSS_SELECTOR, "#kill button[data-scenario='one-worker']").click()
            wait.until(lambda d: d.find_element(By.ID, "state").get_attribute("class") in ("done", "failed"))
            time.sleep(0.5)  # outputs and the timeline are drawn
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1200, min(max(height + 40, 600), 2400))
            target.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(target))
    print(f"screenshot_web: wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "images" / "web.png"))
