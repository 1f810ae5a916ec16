"""A real headless browser (Debian's chromium + chromedriver, installed by ./run) driven by Selenium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.edge.mqtt.conftest import Broker, broker  # noqa: F401 - re-exported fixture
from tests.edge.ops.conftest import config  # noqa: F401 - re-exported fixture

__all__ = ["Broker", "broker", "config"]


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        missing = f"selenium ({err})"
    else:
        missing = "" if chromium and driver else "chromium and chromium-driver (apt)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} missing in CI; ./run installs them")
        pytest.skip(f"{missing} not installed (./run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    drv.implicitly_wait(0)
    yield drv
    drv.quit()
