"""Open a report in real headless Chromium and say what happened: console errors, every network
request, load timings, optionally a screenshot. Used by the browser tests and the size benchmark.

Needs Debian's `chromium` and `chromium-driver` (scripts/setup_chromium.sh) and `selenium` (the
`test` extra). Chromium runs with a fresh profile and without background networking, so any
request it logs comes from the page.

Example::

    >>> with HeadlessChromium() as browser:  # doctest: +SKIP
    ...     result = browser.open(Path("audit.html"), screenshot=Path("shot.png"))
    >>> result.console_errors, result.external_requests  # doctest: +SKIP
    ([], [])
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--mute-audio",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
)


def available() -> str | None:
    """None when Chromium, its driver and selenium are all present, else what is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    return ", ".join(missing) or None


@dataclass(frozen=True, kw_only=True, slots=True)
class PageResult:
    url: str
    console_errors: list[str]  # SEVERE console entries (script errors, CSP violations, failed loads)
    requests: list[str]  # every URL the page requested (data: URLs included)
    load_s: float  # from navigation start until the cards were rendered (or the load event)
    dom_content_loaded_s: float  # navigation timing
    load_event_s: float  # navigation timing

    @property
    def external_requests(self) -> list[str]:
        """Requests other than the report file itself and data: URIs."""
        return [
            u
            for u in self.requests
            if not u.startswith("data:") and u.split("#")[0] != self.url.split("#")[0]
        ]


class HeadlessChromium:
    """A Chromium session through chromedriver, with console and performance (network) logs on."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        problem = available()
        if problem:
            raise RuntimeError(
                f"headless Chromium is not usable: missing {problem}; run scripts/setup_chromium.sh"
            )
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self._profile = tempfile.mkdtemp(prefix="eagle-report-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.execute_cdp_cmd("Network.enable", {})

    def __enter__(self) -> HeadlessChromium:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def resize(self, width: int, height: int) -> None:
        self.driver.set_window_size(width, height)

    def open(
        self, path: Path, *, screenshot: Path | None = None, full_page: bool = False, timeout_s: float = 60.0
    ) -> PageResult:
        """Load `path`, wait until the card script has run, collect logs; optionally save a PNG."""
        self.driver.get_log("browser")  # drop anything from before this page
        self.driver.get_log("performance")
        url = Path(path).resolve().as_uri()
        start = time.perf_counter()
        self.driver.get(url)  # returns after the load event
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if self.driver.execute_script(
                "return document.body && (document.body.hasAttribute('data-cards-rendered') "
                "|| !document.getElementById('cards'))"
            ):
                break
            time.sleep(0.02)
        load_s = time.perf_counter() - start
        timing = self.driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return n ? [n.domContentLoadedEventEnd, n.loadEventEnd] : [0, 0];"
        )
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            if full_page:
                height = self.driver.execute_script("return document.documentElement.scrollHeight")
                size = self.driver.get_window_size()
                self.driver.set_window_size(size["width"], min(int(height) + 120, 16000))
                self.driver.save_screenshot(str(screenshot))
                self.driver.set_window_size(size["width"], size["height"])
            else:
                self.driver.save_screenshot(str(screenshot))
        errors = [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]
        requests = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                requests.append(message["params"]["request"]["url"])
        return PageResult(
            url=url,
            console_errors=errors,
            requests=requests,
            load_s=load_s,
            dom_content_loaded_s=timing[0] / 1000,
            load_event_s=timing[1] / 1000,
        )
