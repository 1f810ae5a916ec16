"""The operator's page in a real browser, against a service on sim:// publishing to a real mosquitto:
edit a prompt, preview, activate, see the new version live and over MQTT, roll back, and a bad
edit shown beside its field."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from edge.app import build_station
from edge.config import ServiceConfig
from tests.edge.mqtt.conftest import Broker, Subscriber

SHOTS = os.environ.get("EDGE_INSPECT_SCREENSHOTS")  # e.g. docs/screenshots, to refresh the README's


def test_edit_preview_activate_rollback(browser: Any, config: Callable[..., ServiceConfig], broker: Broker) -> None:
    cfg = config(mqtt={"host": "127.0.0.1", "port": broker.port, "client_id": "st1"})
    mes = Subscriber(broker.port)
    wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))  # lists re-render
    with build_station(cfg) as svc:
        first = svc.prompt_state.version
        browser.get(f"http://127.0.0.1:{svc.ops.port}/")  # type: ignore[union-attr]
        wait.until(ec.text_to_be_present_in_element((By.ID, "ps-version"), first))
        wait.until(lambda d: "no result" not in d.find_element(By.CSS_SELECTOR, "#cam-cam1 .info").text)
        assert browser.find_element(By.ID, "health").text == "healthy"
        _shot(browser, "live")
        browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=status]").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "health-summary"), "Everything is healthy"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "health-facts"), "MQTT connected"))

        browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=prompts]").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#categories tbody tr"))
        prompts = browser.find_elements(By.CSS_SELECTOR, "#categories .c-prompts")[1]
        prompts.clear()  # an empty category is invalid: the error must appear beside this field
        browser.find_element(By.ID, "operator").send_keys("anna")
        browser.find_element(By.ID, "activate").click()
        error = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".field-error")))
        assert "categories.1.prompts" in error.text and prompts.get_attribute("data-invalid") is not None
        assert svc.prompt_state.version == first  # nothing went live

        prompts.send_keys("with a deep scratch")
        browser.find_element(By.ID, "preview").click()
        wait.until(ec.visibility_of_element_located((By.ID, "preview-table")))
        assert "cam1" in browser.find_element(By.ID, "preview-table").text
        assert svc.prompt_state.version == first  # still nothing live
        _shot(browser, "prompts")

        browser.find_element(By.ID, "activate").click()
        # the preview's message is still shown until the activation answers: wait for the activation's own words
        wait.until(ec.text_to_be_present_in_element((By.ID, "edit-message"), "activated: version"))
        new = svc.prompt_state.version
        assert new != first and svc.prompts.history.entries()[0].source == "ui:anna"
        wait.until(ec.text_to_be_present_in_element((By.ID, "ps-version"), new))
        live = browser.find_element(By.CSS_SELECTOR, "#cam-cam1 .info")  # on the hidden Live tab: textContent
        wait.until(lambda d: f"set {new}" in (live.get_attribute("textContent") or ""))
        mes.wait(lambda s: any(r["prompt_set"]["version"] == new for r in s.results()))

        button = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"button.rollback[data-version='{first}']")))
        button.click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "ps-version"), first))
        assert svc.prompt_state.version == first

        browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=history]").click()

        def newest_scored_by_active(d: Any) -> bool:  # marks only count on frames the active set scored
            rows = d.find_elements(By.CSS_SELECTOR, "#results tbody tr")[:4]
            return len(rows) == 4 and all(first in r.text for r in rows)

        wait.until(lambda d: svc.recent()[-4].prompt_set.version == first)
        browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=live]").click()
        browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=history]").click()  # reloads the list
        wait.until(newest_scored_by_active)
        # threshold assistant: mark four recent parts, get proposals, copy them into the editor
        for i, label in enumerate(("good", "scratch", "good", "scratch")):
            Select(browser.find_elements(By.CSS_SELECTOR, "#results select.mark")[i]).select_by_visible_text(label)
        browser.find_element(By.ID, "propose").click()
        table = wait.until(ec.visibility_of_element_located((By.ID, "proposal-table")))
        assert "scratch" in table.text
        _shot(browser, "history")
        browser.find_element(By.ID, "use-proposals").click()
        row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#categories tbody tr")
                   if r.find_element(By.CSS_SELECTOR, ".c-name").get_attribute("value") == "scratch")
        assert row.find_element(By.CSS_SELECTOR, ".c-threshold").get_attribute("value") != ""
    # the service is gone: the page says so instead of freezing
    wait.until(ec.text_to_be_present_in_element((By.ID, "connection"), "does not answer"))
    mes.close()


def _shot(browser: Any, name: str) -> None:
    """The README's screenshots come from this test: EDGE_INSPECT_SCREENSHOTS=docs/screenshots ./run test tests/e2e."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(Path(SHOTS) / f"{name}.png"))


def test_teach_good_parts_see_where_and_roll_back(browser: Any, demo_bundles: dict[str, Path], tmp_path: Path,
                                                  broker: Broker) -> None:
    """An operator teaches good parts from a camera of good parts; the memory goes live (header, MQTT), an NG
    frame of the other camera carries its anomaly and heat map; rolling back removes the memory."""
    import cv2

    from edge.config import parse_config
    from export.captions import DEMO_PROMPTS_FILE

    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(DEMO_PROMPTS_FILE.read_text())
    tiles = {"rows": 2, "cols": 2, "overlap": 0.25}
    cfg = parse_config({
        "cameras": [{"name": "good", "source": "sim://line?seed=11&product=steel-plate&defect_rate=0", "fps": 6,
                     "tiles": tiles},
                    {"name": "line", "source": "sim://line?seed=12&product=steel-plate&defect_rate=0.8", "fps": 2,
                     "tiles": tiles}],
        "model": {"bundle": str(demo_bundles["clip"])}, "prompts": str(prompts), "state_dir": str(tmp_path / "state"),
        "station": {"site": "s", "line": "l", "station": "st"}, "ops": {"http": {"port": _free_port()}},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": "st-teach"}}, "test")
    mes = Subscriber(broker.port)
    wait = WebDriverWait(browser, 90, ignored_exceptions=(StaleElementReferenceException,))
    with build_station(cfg) as svc:
        browser.get(f"http://127.0.0.1:{svc.ops.port}/")  # type: ignore[union-attr]
        wait.until(ec.text_to_be_present_in_element((By.ID, "mem-version"), "none"))
        browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=good]").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#teach-camera option")) == 2)
        Select(browser.find_element(By.ID, "teach-camera")).select_by_visible_text("good")
        frames = browser.find_element(By.ID, "teach-frames")
        frames.clear()
        frames.send_keys("12")
        browser.find_element(By.ID, "teach").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#staged img")) == 12)  # shown before kept
        assert svc.prompt_state.memories == {}  # nothing changed yet
        browser.find_element(By.ID, "operator").send_keys("otto")
        browser.find_element(By.ID, "keep").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "teach-message"), "is live"))
        version = svc.prompt_state.memory_version
        assert version and svc.prompt_state.good_images == 12
        wait.until(ec.text_to_be_present_in_element((By.ID, "mem-version"), version))
        mes.wait(lambda s: any((r.get("memory") or {}).get("version") == version for r in s.results()), timeout=60)
        mes.wait(lambda s: any(r["verdict"] == "ng" and r["anomaly"] and r["snapshot"] and r["camera"] == "line"
                               for r in s.results()), timeout=90)
        ng = next(r for r in mes.results() if r["verdict"] == "ng" and r["anomaly"] and r["camera"] == "line")
        assert ng["anomaly"]["score"] >= ng["anomaly"]["threshold"] and ng["anomaly"]["box"]
        browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=history]").click()
        thumb = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"img[alt='{ng['snapshot']}']")))
        wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", thumb) > 0)  # the NG evidence
        evidence = cv2.imread(str(tmp_path / "state" / "evidence" / ng["snapshot"]))
        hsv = cv2.cvtColor(evidence, cv2.COLOR_BGR2HSV)
        assert (hsv[..., 1] > 120).mean() > 0.2  # the heat map is blended over the frame (the part is grey)
        browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=live]").click()
        live = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#cam-line img")))
        assert "where=1" in (live.get_attribute("src") or "")
        _shot(browser, "where")
        browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=good]").click()
        browser.find_element(By.ID, "memory-rollback").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "teach-message"), "rolled back"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "mem-version"), "none"))
        assert svc.prompt_state.memories == {} and "ui:otto" in svc.prompts.history.entries()[0].source
        count = len(mes.results())
        mes.wait(lambda s: len(s.results()) > count + 2 and s.results()[-1]["memory"] is None, timeout=60)
    mes.close()


def _free_port() -> int:
    from edge.mqtt.local_broker import free_port

    return free_port()
