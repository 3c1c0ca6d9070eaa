"""Headless Chromium driven by Selenium, for the HTML report tests and the docs' screenshots.

`chromium()` starts the browser from the operating system's packages (chromium and
chromium-driver) with its console and network logs on; it raises `BrowserMissing` naming
what is missing when it cannot."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

BINARIES = ("chromium", "chromium-browser", "google-chrome")


class BrowserMissing(Exception):
    pass


def chromium(width: int = 1280, height: int = 1000):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise BrowserMissing("selenium is not installed (pip install -e '.[dev]')") from None
    binary = next((b for b in map(shutil.which, BINARIES) if b), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        raise BrowserMissing("no headless Chromium: install the chromium and chromium-driver "
                             "packages (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    return driver


def requests(driver) -> list[str]:
    """The URLs the page asked for since the last call (from the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def full_page_png(driver, path: Path, width: int = 1280, most: int = 6000) -> Path:
    """A screenshot of the whole page (up to `most` pixels tall) written to `path`."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height) + 40, most))
    path.write_bytes(driver.get_screenshot_as_png())
    return path


def pixel_spread(png: bytes) -> float:
    """Standard deviation of the screenshot's pixel values (0 for a blank page)."""
    from matplotlib.image import imread

    return float(imread(io.BytesIO(png), format="png")[..., :3].std())
