"""The comparison report in real headless Chromium: no console errors, no network requests, the
numbers on screen equal the comparison's JSON, changes within noise are not coloured, the new
hallucinations show as side-by-side cards with their images and maps, model text stays inert, and
a narrow window does not scroll sideways. Screenshots go to test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.compare import compare_runs
from auditors.comparison import BETTER
from reports.changes import judge_difference
from reports.compare import build_comparison_report
from storage.store import Store
from tests.support.browser import HeadlessChromium, available
from tests.support.paired_runs import Q, write_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(available() is not None, reason=f"headless Chromium not usable: {available()}"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = (
    '</script><script>window.__pwned = 1</script><img src="x.png" onerror="window.__pwned = 2"> <b>Yes</b>'
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Two explained nights of the synthetic probe audit, compared; (store, comparison, report)."""
    from tests.support.synthetic_store import write_synthetic_audit

    root = tmp_path_factory.mktemp("compare")
    runs = write_synthetic_audit(root / "store", root / "world", nights=2, n_images=20, explain_nights=2)
    comparison = compare_runs(root / "store", runs[0], runs[1], n_boot=1000).to_dict()
    out = build_comparison_report(root / "store", comparison, root / "compare.html")
    return root / "store", comparison, out


@pytest.fixture(scope="module")
def browser():
    with HeadlessChromium(width=1280, height=1000) as b:
        yield b


@pytest.fixture(scope="module")
def loaded(browser, synthetic):
    result = browser.open(synthetic[2], screenshot=ARTIFACTS / "compare-probe.png", full_page=True)
    return browser, result


def test_loads_without_console_errors_or_network_requests(loaded) -> None:
    _, result = loaded
    assert result.console_errors == []
    assert result.external_requests == []
    assert (ARTIFACTS / "compare-probe.png").stat().st_size > 50_000


def test_numbers_on_screen_equal_the_comparison(loaded, synthetic) -> None:
    from selenium.webdriver.common.by import By

    browser, _ = loaded
    d = browser.driver
    _, comparison, _ = synthetic
    rows = [g for g in comparison["groups"] if g["object_class"] == "all"]
    assert len(rows) == 8  # two label sets, three splits and all
    muted = d.execute_script("return getComputedStyle(document.documentElement).getPropertyValue('--muted')")
    seen_noise = False
    for g in rows:
        tr = d.find_element(
            By.CSS_SELECTOR,
            f'#compare-table tr[data-label-set="{g["label_set"]}"][data-split="{g["split"]}"]',
        )
        assert tr.find_element(By.CSS_SELECTOR, 'td[data-metric="n"]').text == str(g["questions"])
        for metric in ("f1", "accuracy", "yes_ratio", "hallucination_rate", "unparsed_share"):
            m = g["metrics"][metric]
            cell = tr.find_element(By.CSS_SELECTOR, f'td[data-metric="{metric}"]')
            assert float(cell.get_attribute("data-baseline")) == m["baseline"]
            assert float(cell.get_attribute("data-candidate")) == m["candidate"]
            assert cell.text.split("\n")[0] == f"{m['baseline']:.3f} → {m['candidate']:.3f}"
            change = cell.find_element(By.CSS_SELECTOR, ".delta")
            expected = judge_difference(m, BETTER[metric])
            assert change.get_attribute("data-verdict") == expected.verdict
            if expected.verdict == "within noise":
                seen_noise = True
                assert m["low"] <= 0 <= m["high"]
                # not red, not green: the page's muted text colour
                assert d.execute_script(
                    "const e = document.createElement('i'); e.style.color = arguments[1];"
                    "document.body.append(e); const c = getComputedStyle(e).color; e.remove();"
                    "return getComputedStyle(arguments[0]).color === c;",
                    change,
                    muted.strip(),
                )
        mc = tr.find_element(By.CSS_SELECTOR, 'td[data-metric="mcnemar"]')
        assert (int(mc.get_attribute("data-new")), int(mc.get_attribute("data-fixed"))) == (
            g["mcnemar"]["new_errors"],
            g["mcnemar"]["fixed"],
        )
    assert seen_noise  # nightly wobbles of the synthetic model: some change must read "within noise"


def test_new_hallucinations_are_side_by_side_cards_with_images_and_maps(loaded, synthetic) -> None:
    from selenium.webdriver.common.by import By

    browser, _ = loaded
    d = browser.driver
    _, comparison, _ = synthetic
    pairs = {(c["image"], c["question"]) for c in comparison["new_hallucinations"]}
    cards = d.find_elements(By.CSS_SELECTOR, "#new-cards .pair-card")
    assert len(cards) == len(pairs) > 0
    maps = 0
    for card in cards:
        sides = card.find_elements(By.CSS_SELECTOR, ".side")
        assert [s.find_element(By.TAG_NAME, "h4").text.split()[0] for s in sides] == ["Baseline", "Candidate"]
        base_y, cand_y = (s.rect["y"] for s in sides)
        assert abs(base_y - cand_y) < 2  # side by side, not stacked, in a wide window
        image = card.find_element(By.CSS_SELECTOR, "figure.image img")
        assert d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0
        for img in card.find_elements(By.CSS_SELECTOR, ".side figure.map img"):
            assert d.execute_script("return arguments[0].naturalWidth", img) > 0
            maps += 1
    assert maps > 0  # the candidate explained its new hallucinations
    fixed = d.find_elements(By.CSS_SELECTOR, "#fixed-cards .pair-card")
    assert len(fixed) == len({(c["image"], c["question"]) for c in comparison["fixed"]})


def test_model_text_is_shown_verbatim_and_never_runs(browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    questions = [Q(f"random/{i}", f"{i}.jpg", "dog", "no", "no") for i in range(3)]
    store = tmp_path / "store"
    st = Store(store)
    write_run(st, "a", "m", 1, questions, {})
    write_run(st, "b", "m", 2, questions, {"random/1": "yes"}, texts={"random/1": HOSTILE})
    st.close()
    out = build_comparison_report(
        store, compare_runs(store, "a", "b", n_boot=200).to_dict(), tmp_path / "c.html"
    )
    result = browser.open(out)
    d = browser.driver
    assert result.console_errors == [] and result.external_requests == []
    answers = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#new-cards .side .answer .text")]
    assert HOSTILE in answers
    assert d.find_elements(By.CSS_SELECTOR, "#new-cards b, #new-cards script, img[src='x.png']") == []
    assert d.execute_script("return window.__pwned") is None


def test_narrow_window_does_not_scroll_sideways(browser, synthetic) -> None:
    browser.resize(380, 800)
    try:
        result = browser.open(synthetic[2], screenshot=ARTIFACTS / "compare-probe-narrow.png")
        assert result.console_errors == []
        overflow = browser.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1
    finally:
        browser.resize(1280, 1000)
