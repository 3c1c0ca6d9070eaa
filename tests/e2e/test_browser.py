"""Every HTML report in a real browser (headless Chromium, Selenium): it loads with no
console error and no network request, its tables sort when a header is clicked, its figures
have a size, and a screenshot of it is not blank. One browser for the module; skipped
without Chromium, failed instead when CI is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser import BrowserMissing, chromium, pixel_spread, requests

import handgrad
from handgrad.cli.main import main

SUBMISSIONS = Path(__file__).resolve().parents[1] / "submissions"


@pytest.fixture(scope="module")
def browser():
    try:
        driver = chromium()
    except BrowserMissing as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {e}")
        pytest.skip(str(e))
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """report.html of reproduce, train, sweep, and of a graded class."""
    out = tmp_path_factory.mktemp("browser")
    handgrad.reproduce(dataset="digits", hidden=[16], epochs=3, out=out / "reproduce")
    quiet = ["--dataset", "digits", "--hidden", "8", "--epochs", "2", "--quiet"]
    assert main(["train", *quiet, "--out", str(out / "train")]) == 0
    assert main(["sweep", *quiet, "--lr", "0.01", "0.1", "--out", str(out / "sweep")]) == 0
    files = [str(SUBMISSIONS / f) for f in ("correct_plain.py", "bug_transposed.py",
                                            "bug_wrong_sign.py", "hostile_os_exit.py")]
    assert main(["grade", *files, "--quiet", "--jobs", "2", "--out", str(out / "class")]) == 1
    return {name: out / name / "report.html"
            for name in ("reproduce", "train", "sweep", "class")}


def load(browser, path: Path) -> list[str]:
    """Open `path`; the URLs it requested besides itself and inline data."""
    requests(browser)  # forget earlier pages' requests
    browser.get_log("browser")
    browser.get(path.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    return [u for u in requests(browser) if not u.startswith(("data:", path.as_uri()))]


@pytest.mark.parametrize("name", ["reproduce", "train", "sweep", "class"])
def test_report_loads_offline_with_no_error_and_draws(browser, reports, name):
    from selenium.webdriver.common.by import By

    assert load(browser, reports[name]) == []
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    drawn = [el for el in browser.find_elements(By.CSS_SELECTOR, "img, svg, .histogram")
             if el.is_displayed()]
    assert drawn and all(el.size["width"] > 50 and el.size["height"] > 50 for el in drawn)
    images = browser.find_elements(By.TAG_NAME, "img")
    assert all(browser.execute_script("return arguments[0].naturalWidth", im) > 0
               for im in images)
    assert pixel_spread(browser.get_screenshot_as_png()) > 0.05


@pytest.mark.parametrize("name,table,column", [("class", "#students-table", "score"),
                                               ("reproduce", "table.sortable", "entries")])
def test_tables_sort_when_a_header_is_clicked(browser, reports, name, table, column):
    from selenium.webdriver.common.by import By

    load(browser, reports[name])
    element = browser.find_element(By.CSS_SELECTOR, table)
    headers = [h.text.rstrip(" ⇅▲▼") for h in element.find_elements(By.TAG_NAME, "th")]
    index = headers.index(column)
    header = element.find_elements(By.TAG_NAME, "th")[index]

    def column_values() -> list[float]:
        cells = element.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({index + 1})")
        return [float(c.get_attribute("data-sort") or c.text) for c in cells]

    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert column_values() == sorted(column_values()) and len(set(column_values())) > 1
    header.click()
    assert column_values() == sorted(column_values(), reverse=True)
