"""Headless Chromium driven by Selenium with the system's driver (Debian's chromium and
chromium-driver), as the console tests use it; and the README's screenshot:

    python -m tests.support.browser docs/console.png

The flags are those a closed network needs: without the background-networking ones Chromium
keeps trying to reach Google's hosts.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def available() -> bool:
    return bool(shutil.which(CHROMIUM) and shutil.which(DRIVER))


def chromium(user_data_dir: Path, size: str = "1200,1000"):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={user_data_dir}", f"--window-size={size}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(DRIVER))


def screenshot(out: Path) -> None:
    """The console mid-stream: this README, six times over, through /stream_large_dataset."""
    from dtesn.client import Client
    from tests.support.server import ROOT, Server

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp))
        browser = chromium(Path(tmp) / "chromium", "1200,1180")
        try:
            dataset_id = Client(server.url).upload((ROOT / "README.md").read_bytes() * 6)
            query = urlencode({"endpoint": "stream_large_dataset", "dataset_id": dataset_id, "esn_size": 1024,
                               "membrane_depth": 4, "frame_size": 4, "compression_level": 2, "autostart": 1})
            browser.get(f"{server.url}/?{query}")
            deadline = time.monotonic() + 60
            while len(browser.find_elements("css selector", "#log li")) < 40 and time.monotonic() < deadline:
                time.sleep(0.02)
            browser.save_screenshot(str(out))
        finally:
            browser.quit()
            server.stop()


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]))
