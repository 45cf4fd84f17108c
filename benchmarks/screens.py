"""Screenshots of every console page, at desktop and at phone width, for a person to look at.

    python -m benchmarks.screens [--out DIR]

Starts a real mosquitto, a live central (SQLite) fed by two nodes over MQTT (the same station
the browser tests use), logs in as station staff in headless Chromium and writes PNGs:
login, queue, event (an opened anomaly), events list and gallery, status (one node stopped),
charts and the daily report. Also prints what each page transferred (HTML, scripts, styles;
images apart) as the browser's Resource Timing reports it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import DESKTOP, PHONE, chromium, screenshot, wait_css
from tests.central.web.station import PASSWORD, live_station
from tests.helpers import MosquittoServer, free_port

SHARED = Path(__file__).resolve().parents[2] / "shared"
TRANSFER_JS = """
const entries = performance.getEntriesByType('resource')
  .concat(performance.getEntriesByType('navigation'));
let other = 0, images = 0;
for (const e of entries) {
  if (e.initiatorType === 'img') images += e.transferSize; else other += e.transferSize;
}
return [other, images];
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ww-screens")
    parser.add_argument("--shared", type=Path, default=SHARED)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ww-screens-"))
    (work / "mqtt").mkdir()
    broker = MosquittoServer(work / "mqtt", free_port())
    broker.start()
    image = max(
        sorted((args.shared / "data" / "images").glob("*.jpg")), key=lambda p: p.stat().st_size
    )
    try:
        with live_station(
            workdir=work,
            mosquitto_port=broker.port,
            database_url=f"sqlite:///{work / 'central.db'}",
            image=image,
        ) as station:
            egret = str(station.events["dead_egret"].event_id)
            print(f"{'page':<10} {'size':<8} {'KB (no images)':>15} {'KB images':>10}  file")
            for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
                with chromium(*size) as driver:
                    driver.get(station.base + "/login")
                    wait_css(driver, "input[name=name]")
                    _shot(driver, args.out, "login", label)
                    driver.find_element(By.NAME, "name").send_keys("wang")
                    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
                    driver.find_element(By.CSS_SELECTOR, ".login button").click()
                    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/queue"))
                    _shot(driver, args.out, "queue", label)
                    driver.get(f"{station.base}/events/{egret}")
                    wait_css(driver, "#event .shot img")
                    _shot(driver, args.out, "event", label)
                    for page in ("events", "events?view=gallery", "stats", "reports"):
                        driver.get(f"{station.base}/{page}")
                        wait_css(driver, "main")
                        if page == "stats":
                            WebDriverWait(driver, 10).until(
                                lambda d: len(d.find_elements(By.CSS_SELECTOR, ".chart svg")) == 4
                            )
                        _shot(driver, args.out, page.replace("?view=", "-"), label)
                    station.stop_node("cx-01")
                    driver.get(f"{station.base}/status")
                    WebDriverWait(driver, 10, 0.5).until(_offline_shown)
                    _shot(driver, args.out, "status", label)
    finally:
        broker.stop()
    print(f"screenshots in {args.out}")


def _offline_shown(driver: webdriver.Chrome) -> bool:
    driver.refresh()
    return bool(driver.find_elements(By.CSS_SELECTOR, ".node.offline"))


def _shot(driver: object, out: Path, name: str, label: str) -> None:
    # lazy thumbnails in view load first
    WebDriverWait(driver, 10).until(  # type: ignore[type-var]
        lambda d: d.execute_script(  # type: ignore[attr-defined]
            "return [...document.images].every(i => i.complete)"
        )
    )
    other, images = driver.execute_script(TRANSFER_JS)  # type: ignore[attr-defined]
    path = screenshot(driver, out / f"{name}-{label}.png", full_page=True)  # type: ignore[arg-type]
    print(f"{name:<10} {label:<8} {other / 1024:>15.1f} {images / 1024:>10.1f}  {path}")


if __name__ == "__main__":
    main()
