"""`vaekit report` renders in a real browser: headless Chromium loads it offline, without console
errors, and draws every embedded image. Fails (never skips) when Chromium or its driver is missing:
install Debian's `chromium` and `chromium-driver`."""

from pathlib import Path

import pytest
from selenium import webdriver

from vaekit.cli import main

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SECTIONS = ["Configuration", "Metrics", "Training curves", "Samples", "Reconstructions", "Latent traversals", "Latent map",
            "KL per dimension"]


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), \
        "headless Chromium is needed: apt-get install chromium chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)"
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def test_the_report_of_a_trained_run_renders_in_headless_chromium(tmp_path, browser):
    run = tmp_path / "vae"
    assert main(["train", "vae", "--data", "digits", "--arch", "mlp", "--epochs", "1", "--latent-dim", "2", "--hidden-dims", "16",
                 "--nll-samples", "5", "--quiet", "--out", str(run)]) == 0
    assert main(["report", str(run), "--quiet"]) == 0
    browser.get((run / "report.html").resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []
    images = browser.execute_script(
        "return Array.from(document.images).map(i => { const r = i.getBoundingClientRect();"
        " return {alt: i.alt, complete: i.complete, natural: [i.naturalWidth, i.naturalHeight], shown: [r.width, r.height]}; })")
    assert [i["alt"] for i in images] == ["training curves", "samples", "reconstructions", "latent traversals", "latent map",
                                          "decoded manifold", "KL per dimension"]
    for image in images:
        assert image["complete"] and min(image["natural"]) > 0 and min(image["shown"]) > 0, image
    headings = browser.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    assert headings == SECTIONS
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith("data:") for name in resources), resources  # nothing fetched from files or the network
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 1280  # no horizontal scrolling at a laptop's width
