"""The reader page in headless Chromium: a reader answers every case with the keyboard, the
server is killed and restarted and the page reloaded midway, nothing is lost, and the report
counts exactly the answers given."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_turing import build_small_study

from synthtumor.turing.report import score, study_report
from synthtumor.turing.study import DATABASE, KEY

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian packages chromium, "
                "chromium-driver)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

READER = "Dr Test"
KEYS = {"r": "real", "s": "synthetic", "u": "unsure"}
PATTERN = "srusrs"  # the answers given, in the order the cases are shown
WAIT_S = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``synthtumor turing serve`` in a subprocess; ``kill()`` is SIGKILL, as a crash."""

    def __init__(self, study: Path, port: int) -> None:
        self.study, self.port = study, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synthtumor.cli", "turing", "serve", str(self.study),
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()}")
            try:
                if httpx.get(self.url + "/api/study", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server not up on {self.url} after {WAIT_S} s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT_S)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    study = build_small_study(tmp_path_factory.mktemp("turing_browser"))
    srv = Server(study, _free_port())
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=700,980", "--disable-gpu"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _state(driver) -> tuple[str | None, str | None]:
    body = driver.find_element(By.TAG_NAME, "body")
    return body.get_attribute("data-state"), body.get_attribute("data-case")


def _wait(driver, state: str, case: int | None = None) -> None:
    want = (state, None if case is None else str(case))
    WebDriverWait(driver, WAIT_S).until(
        lambda d: _state(d) == want if case is not None else _state(d)[0] == state,
        message=f"page never reached {want}; it shows {_state(driver)}",
    )


def _shown(driver) -> tuple[str, int]:
    """(case id, slice index) of the image on screen, once it has loaded."""
    img = driver.find_element(By.ID, "slice")
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                   img))
    m = re.search(r"/api/cases/([0-9a-f]{16})/slices/(\d+)$", img.get_attribute("src"))
    assert m, img.get_attribute("src")
    return m.group(1), int(m.group(2))


def _rows(study: Path) -> int:
    with sqlite3.connect(study / DATABASE) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])


def _press(driver, key: str) -> None:
    webdriver.ActionChains(driver).send_keys(key).perform()


def test_a_reader_answers_every_case_and_a_crash_loses_nothing(server: Server, browser) -> None:
    t0 = time.monotonic()
    info = httpx.get(server.url + "/api/study").json()
    n, slices = info["cases"], info["slices"]
    assert n == len(PATTERN) == 6
    browser.get(server.url + "/")
    _wait(browser, "login")
    assert "R" in browser.page_source and "Synthetic" in browser.page_source
    name = browser.find_element(By.ID, "name")
    name.send_keys(READER + Keys.ENTER)
    _wait(browser, "reading", 1)
    order = httpx.get(f"{server.url}/api/readers/{READER}").json()["order"]
    given: dict[str, str] = {}
    for i, letter in enumerate(PATTERN):
        if i == 3:
            # crash the server mid-study, restart it, reload the page: nothing answered is lost
            server.kill()
            assert _rows(server.study) == 3
            server.start()
            browser.refresh()
            _wait(browser, "reading", 4)  # resumes with the name it remembered, at case 4
            assert browser.find_element(By.ID, "progress").text == f"Case 4 of {n}"
        case_id, k = _shown(browser)
        assert case_id == order[i] and k == slices // 2
        # scroll: arrow keys one slice each, the mouse wheel one slice per notch
        _press(browser, Keys.ARROW_UP)
        _press(browser, Keys.ARROW_UP)
        assert _shown(browser) == (case_id, k + 2)
        viewer = browser.find_element(By.ID, "viewer")
        webdriver.ActionChains(browser).scroll_from_origin(
            ScrollOrigin.from_element(viewer), 0, 120).perform()
        want = (case_id, k + 1)
        WebDriverWait(browser, WAIT_S).until(lambda d, want=want: _shown(d) == want)
        assert browser.find_element(By.ID, "slice-no").text == f"{k + 2} / {slices}"
        if i == 0 and os.environ.get("TURING_SCREENSHOT"):
            browser.save_screenshot(os.environ["TURING_SCREENSHOT"])
        _press(browser, letter.upper() if i % 2 else letter)  # R and r both answer
        given[case_id] = KEYS[letter]
        if i + 1 < n:
            _wait(browser, "reading", i + 2)
    _wait(browser, "done")
    assert f"All {n} cases answered" in browser.find_element(By.ID, "done").text
    assert _rows(server.study) == n

    # the report counts exactly what the reader pressed, scored against the key
    truth = {c: v["truth"] for c, v in
             json.loads((server.study / KEY).read_text())["cases"].items()}
    tp = sum(truth[c] == "synthetic" and a == "synthetic" for c, a in given.items())
    fn = sum(truth[c] == "synthetic" and a == "real" for c, a in given.items())
    tn = sum(truth[c] == "real" and a == "real" for c, a in given.items())
    fp = sum(truth[c] == "real" and a == "synthetic" for c, a in given.items())
    report = study_report(server.study)
    mine = report["readers"][READER]
    assert (mine["tp"], mine["fn"], mine["tn"], mine["fp"]) == (tp, fn, tn, fp)
    assert mine["unsure"] == PATTERN.count("u") and mine["answered"] == n
    assert mine["accuracy"] == pytest.approx((tp + tn) / (tp + fn + tn + fp))
    assert mine["fooled"] == {"k": fn, "n": 3}
    assert mine == score(truth, given) and report["overall"]["tp"] == tp
    assert time.monotonic() - t0 < 60
