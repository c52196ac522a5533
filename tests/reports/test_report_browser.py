"""The report in real headless Chromium: no console errors, no network requests, the numbers on
screen equal DuckDB's, model text stays inert, paging and filters work, narrow windows work.
Screenshots go to test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import HeadlessChromium, available

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(available() is not None, reason=f"headless Chromium not usable: {available()}"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _click(driver, element) -> None:
    """A real click, after scrolling the element clear of the sticky navigation bar."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


@pytest.fixture(scope="module")
def browser():
    with HeadlessChromium(width=1280, height=1000) as b:
        yield b


@pytest.fixture(scope="module")
def loaded(browser, report_path):
    result = browser.open(report_path, screenshot=ARTIFACTS / "report-probe.png", full_page=True)
    return browser, result


def test_loads_without_console_errors_or_network_requests(loaded):
    _, result = loaded
    assert result.console_errors == []
    assert result.external_requests == []
    assert (ARTIFACTS / "report-probe.png").stat().st_size > 50_000


def test_summary_on_screen_equals_duckdb(loaded, con, audit):
    from selenium.webdriver.common.by import By

    browser, _ = loaded
    rows = con.execute(
        """SELECT split, label_set, f1, accuracy, precision, recall, yes_ratio FROM metrics
        WHERE run_id = ? AND object_class = 'all' AND label_set IN ('pope', 'repope')""",
        [audit[2][-1]],
    ).fetchall()
    for split, label_set, *values in rows:
        tr = browser.driver.find_element(
            By.CSS_SELECTOR, f'#metrics-table tr[data-split="{split}"][data-label-set="{label_set}"]'
        )
        for name, value in zip(("f1", "accuracy", "precision", "recall", "yes_ratio"), values, strict=True):
            cell = tr.find_element(By.CSS_SELECTOR, f'td[data-metric="{name}"]')
            assert float(cell.get_attribute("data-value")) == value
            assert cell.text.split("\n")[0] == f"{value:.3f}"  # what a reader sees, rounded


def test_hostile_model_text_is_visible_and_inert(loaded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser, _ = loaded
    d = browser.driver
    assert d.execute_script("return window.__pwned") is None
    Select(d.find_element(By.ID, "f-split")).select_by_value("captions")
    answers = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#cards .card .answer")]
    hostile = [a for a in answers if "__pwned" in a]
    assert hostile and "</script><script>window.__pwned = 1</script>" in hostile[0]
    assert '<b>bold</b> & "quotes"' in hostile[0]
    assert d.find_elements(By.CSS_SELECTOR, "#cards b, #cards script, #cards img[src='x.png']") == []
    assert d.execute_script("return window.__pwned") is None
    Select(d.find_element(By.ID, "f-split")).select_by_value("")


def test_pages_filters_and_sorting(loaded, report_path):
    from report_html_helpers import cards_json
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser, _ = loaded
    d = browser.driver
    data = cards_json(report_path.read_text())
    total, size = len(data["cards"]), data["pageSize"]
    shown = len(d.find_elements(By.CSS_SELECTOR, "#cards .card"))
    assert shown == min(total, size)
    classes = [c["cls"] for c in data["cards"] if c["cls"]]
    cls = max(set(classes), key=classes.count)
    Select(d.find_element(By.ID, "f-class")).select_by_value(cls)
    chips = d.find_elements(By.CSS_SELECTOR, "#cards .card header .chip:nth-child(2)")
    assert len(chips) == min(size, sum(c["cls"] == cls for c in data["cards"]))
    assert {c.text for c in chips} == {cls}
    Select(d.find_element(By.ID, "f-class")).select_by_value("")
    Select(d.find_element(By.ID, "f-sort")).select_by_value("area-desc")
    first = d.find_element(By.CSS_SELECTOR, "#cards .card").get_attribute("data-sample")

    def area(c):
        return c["correctionArea"] if c["correctionArea"] is not None else -1

    worst = max(data["cards"], key=lambda c: (area(c), -c["id"]))
    assert first == worst["sample"]
    if total > size:
        _click(d, d.find_element(By.XPATH, "//div[@id='pager-top']/button[contains(., 'Next')]"))
        assert "Page 2 of" in d.find_element(By.ID, "pager-top").text


def test_class_table_sorts_on_click(loaded):
    from selenium.webdriver.common.by import By

    browser, _ = loaded
    d = browser.driver
    _click(d, d.find_element(By.XPATH, "//table[@id='class-table']//th[3]/button"))  # Negatives
    cells = d.find_elements(By.CSS_SELECTOR, "#class-table tbody td:nth-of-type(2)")
    values = [int(td.get_attribute("data-sort")) for td in cells]
    assert values == sorted(values) and len(values) > 1


def test_narrow_window_does_not_scroll_sideways(browser, report_path):
    browser.resize(380, 800)
    try:
        result = browser.open(report_path, screenshot=ARTIFACTS / "report-probe-narrow.png")
        assert result.console_errors == []
        overflow = browser.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1
    finally:
        browser.resize(1280, 1000)
