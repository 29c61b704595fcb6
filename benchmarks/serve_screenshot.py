"""A screenshot of the ``dsnet serve`` page with a segmented example (for the README), via headless Chromium.

python benchmarks/serve_screenshot.py --weights camvid-cpu60min -o docs/images/serve-page.png
"""

from __future__ import annotations

import argparse
import http.client
import socket
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="dsnet_head64")
    ap.add_argument("--weights", default="camvid-cpu60min")
    ap.add_argument("--example", type=int, default=0, help="which example image to segment")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "dsnet", "serve", args.model, "--weights", args.weights]
                              + ["--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,1100"):
        options.add_argument(flag)
    driver = None
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#examples img")) > args.example)
        driver.find_elements(By.CSS_SELECTOR, "#examples img")[args.example].click()
        WebDriverWait(driver, 60).until(ec.visibility_of_element_located((By.ID, "overlay")))
        time.sleep(0.5)
        driver.save_screenshot(args.out)
        print(f"wrote {args.out}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    main()
