"""Size and browser load time of an HTML audit report with about 1,000 hallucination cards.

Writes a synthetic probe-like audit (tests.support.synthetic_store: real probe world, real Store, real SLICO
regions and maps) big enough for `--cards` explained hallucinations, builds the report with
`reports.build_report`, then opens it in headless Chromium (tests.support.browser) `--repeat` times and
prints: file size, build time, and load time until the first page of cards is drawn.

    .venv/bin/python benchmarks/report_size.py --cards 1000 --workdir /tmp/report-bench
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support lives in the repository


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=1000, help="explained hallucinations in the report")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/report-bench"))
    parser.add_argument("--repeat", type=int, default=3, help="browser loads to time")
    args = parser.parse_args()

    from reports import build_report
    from tests.support.browser import HeadlessChromium
    from tests.support.synthetic_store import write_synthetic_audit

    store, world = args.workdir / "store", args.workdir / "world"
    t0 = time.perf_counter()
    if not store.exists():
        # about 0.55 explained hallucinations per probe image with the synthetic rule; cap at --cards
        write_synthetic_audit(store, world, nights=2, n_images=int(args.cards / 0.5) + 50,
                              max_explanations=args.cards)
    t_store = time.perf_counter() - t0

    t0 = time.perf_counter()
    out = build_report(store, out=args.workdir / "report.html", max_cards=args.cards)
    t_build = time.perf_counter() - t0
    html = out.read_text()
    start = html.index('id="cards-data">') + len('id="cards-data">')
    data = json.loads(html[start: html.index("</script>", start)])
    n_cards, n_images = len(data["cards"]), len(data["images"])

    loads, errors, requests = [], [], []
    with HeadlessChromium() as browser:
        for _ in range(args.repeat):
            result = browser.open(out)
            loads.append(result.load_s)
            errors += result.console_errors
            requests += result.external_requests
        from selenium.webdriver.common.by import By

        button = browser.driver.find_element(By.XPATH, "//div[@id='pager-top']/button[contains(., 'Next')]")
        t0 = time.perf_counter()
        browser.driver.execute_script("arguments[0].click()", button)
        page_s = time.perf_counter() - t0

    print(json.dumps({  # noqa: T201 (a benchmark prints its numbers)
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "cards": n_cards,
        "embedded_images": n_images,
        "size_mb": round(out.stat().st_size / 1e6, 2),
        "store_write_s": round(t_store, 1),
        "build_s": round(t_build, 1),
        "load_s_median": round(statistics.median(loads), 3),
        "load_s_all": [round(x, 3) for x in loads],
        "next_page_s": round(page_s, 3),
        "console_errors": len(errors),
        "external_requests": len(requests),
    }, indent=1))


if __name__ == "__main__":
    main()
