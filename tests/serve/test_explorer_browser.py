"""The explorer page in a real browser: headless Chromium loads it, drags on the plane, clicks a point.

Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/install.sh`` installs them):
the test fails, never skips, when they are missing.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) or shutil.which(os.path.basename(p)))]
    assert not missing, f"the browser test needs {' and '.join(missing)}: apt-get install chromium chromium-driver (scripts/install.sh does it)"
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which("chromedriver")),
                              options=options)
    yield driver
    driver.quit()


def test_drag_decodes_and_click_shows_the_example(browser, server_url, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(server_url + "/")
    canvas = browser.find_element(By.ID, "plane")
    wait.until(lambda d: canvas.get_attribute("data-ready") == "1")
    decoded = browser.find_element(By.ID, "decoded")
    wait.until(lambda d: (decoded.get_attribute("src") or "").startswith("blob:"))
    first = decoded.get_attribute("src")

    # drag from the upper left part of the plane towards the lower right: the decoded image follows
    width, height = canvas.size["width"], canvas.size["height"]
    (ActionChains(browser).move_to_element_with_offset(canvas, -width // 3, -height // 3).click_and_hold()
     .move_by_offset(40, 30).move_by_offset(60, 50).move_by_offset(80, 70).release().perform())
    wait.until(lambda d: decoded.get_attribute("src") not in (first, None))
    assert "ms server" in browser.find_element(By.ID, "latency").text

    # click two drawn points (their pixels from the page's test hook): original, reconstruction, interpolation
    for i in (5, 17):
        x, y = browser.execute_script(f"return window.vaekitExplorer.pointPixel({i});")
        ActionChains(browser).move_to_element_with_offset(canvas, round(x - width / 2), round(y - height / 2)).click().perform()
        wait.until(lambda d: browser.find_element(By.ID, "example-title").text.startswith("#"))
    for name in ("original", "reconstruction", "strip"):
        wait.until(lambda d: d.execute_script(f"return document.getElementById('{name}').naturalWidth;") > 0)
    assert browser.find_element(By.ID, "strip-title").text.startswith("#")
    assert not browser.find_element(By.ID, "error").is_displayed()

    # an image file chosen in the page is encoded and marked on the plane
    from PIL import Image

    Image.new("L", (8, 8), 128).save(tmp_path / "grey.png")
    browser.find_element(By.ID, "file").send_keys(str(tmp_path / "grey.png"))
    wait.until(lambda d: "★" in d.find_element(By.ID, "upload-caption").text)

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe

    # a file of the wrong size: a message on the page (the 400 answer is the browser's only console entry)
    Image.new("L", (20, 20)).save(tmp_path / "big.png")
    browser.find_element(By.ID, "file").send_keys(str(tmp_path / "big.png"))
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "20×20" in browser.find_element(By.ID, "error").text and "8×8" in browser.find_element(By.ID, "error").text
