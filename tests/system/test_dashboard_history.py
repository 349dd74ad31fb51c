"""The dashboard's history and pipeline panels in headless Chromium, through the
gateway with a read key, against data posted through the gateway: a zone
(with a non-ASCII name, sent in upper case) whose three devices send
temperature readings at known minutes. Clicking the zone in "Temperature by
zone" draws its minute buckets (one marker per bucket, the unit on the axis)
and lists its devices; clicking a device draws its own buckets and lists its
alerts newest first, as text; the 7 d window asks for 10-minute buckets; the
pipeline panel has a row per partition; a hidden tab polls nothing.
Screenshots at desktop width and at 375 px go to the test's tmp_path."""
import shutil
import tempfile
import time
import uuid

import pytest
import requests

from conftest import post_accepted, wait_until
from test_metrics_views import chromium_paths

MINUTE = 60_000
DAY = 86_400_000
# the documented topic layout (README): sensor-telemetry 3 partitions, sensor-alerts 2
PARTITIONS = {("sensor-alerts", 0), ("sensor-alerts", 1),
              ("sensor-telemetry", 0), ("sensor-telemetry", 1), ("sensor-telemetry", 2)}
VERDICTS = {"in-sync", "catching-up", "stalled"}


class Data:
    """One zone, three devices, readings at known minutes and two alerts."""

    def __init__(self, now_ms):
        sfx = uuid.uuid4().hex[:8]
        self.zone_sent = f"  Dash-{sfx}-HALLE-Süd "
        self.zone = f"dash-{sfx}-halle-süd"
        self.d1, self.d2, self.d3 = (f"dash-{sfx}-press-1", f"dash-{sfx}-oven-2",
                                     f"dash-{sfx}-fan-3")
        # B: a whole 10 minutes about 3 h ago, so 1 min and 10 min buckets are known
        self.base = (now_ms - 3 * 3_600_000) // (10 * MINUTE) * (10 * MINUTE)
        b = self.base
        r = lambda dev, ts, value, unit="C", typ="temperature": {  # noqa: E731
            "device_id": dev.upper(), "zone": self.zone_sent, "type": typ, "value": value,
            "unit": unit, "ts": ts, "firmware": "3.1.0"}
        self.readings = [
            r(self.d1, b + 5_000, 68.0, "F"),                # 20.0 °C
            r(self.d1, b + MINUTE + 5_000, 21.0),
            r(self.d1, b + 12 * MINUTE + 5_000, 22.5),
            r(self.d1, b + 13 * MINUTE, 55.0, "%", "humidity"),  # another type: not drawn
            r(self.d2, b + MINUTE + 20_000, 23.0),           # same minute as d1's second
            r(self.d2, b + 25 * MINUTE + 5_000, 19.0),
            r(self.d2, b + 25 * MINUTE + 30_000, 21.0),
            r(self.d3, now_ms - 20_000, 21.5),               # reporting now (not silent)
        ]
        self.hot = f"DASH_{sfx.upper()}_HOT"
        self.stop = f"DASH_{sfx.upper()}_STOP"
        a = lambda ts, sev, code, msg: {  # noqa: E731
            "device_id": self.d1, "zone": self.zone_sent, "severity": sev, "code": code,
            "message": msg, "ts": ts, "firmware": "3.1.0"}
        self.alerts = [a(b + 2 * MINUTE, "warning", self.hot, "<b>hot</b> & rising"),
                       a(b + 14 * MINUTE, "critical", self.stop, "stopped <script>x</script>")]
        # expected buckets: 1 min (24 h window) and 10 min (7 d window)
        now_min = (now_ms - 20_000) // MINUTE * MINUTE
        self.zone_1m = {b: (1, 20.0), b + MINUTE: (2, 22.0), b + 12 * MINUTE: (1, 22.5),
                        b + 25 * MINUTE: (2, 20.0), now_min: (1, 21.5)}
        self.zone_10m = 4  # [B, B+10m) [B+10m, B+20m) [B+20m, B+30m) and now's
        self.d1_1m = [b, b + MINUTE, b + 12 * MINUTE]
        self.d1_10m = 2


@pytest.fixture(scope="module")
def data(stack):
    now_ms = int(time.time() * 1000)
    d = Data(now_ms)
    post_accepted(stack, "/v1/telemetry", d.readings)
    post_accepted(stack, "/v1/alerts", d.alerts)
    q = requests.utils.quote
    to = now_ms // MINUTE * MINUTE + MINUTE
    window = {"from": str(to - DAY), "to": str(to)}

    def stored():
        z = requests.get(f"{stack.metrics_url}/v1/zones/{q(d.zone)}/readings",
                         params={"type": "temperature", "step": "auto", **window}, timeout=10)
        al = requests.get(f"{stack.metrics_url}/v1/devices/{q(d.d1)}/alerts",
                          params=window, timeout=10)
        if z.status_code != 200 or al.status_code != 200:
            return None
        return z.json()["history"]["count"] == 7 and len(al.json()["page"]["alerts"]) == 2

    assert wait_until(stored, 90, 0.5), "the readings and alerts did not reach the history views"
    return d


def read_key(stack):
    keys = stack.read_keys
    assert keys, "the stack keeps a read key for the dashboard in secrets/read-keys"
    return keys["dashboard"]


@pytest.fixture
def browser(stack):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium_paths()
    assert binary and driver, "chromium and chromedriver are required (Debian chromium chromium-driver)"
    profile = tempfile.mkdtemp(prefix="pw-chromium-hist-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1100",
                 "--hide-scrollbars"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    try:
        # the read key goes where the page keeps it (sessionStorage of the
        # gateway's origin), so the page asks for nothing
        drv.get(stack.gateway_url + "/style.css")
        drv.execute_script("sessionStorage.setItem('plantwatch.readKey', arguments[0])", read_key(stack))
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def retry_stale(fn, timeout_s=30):
    """fn() once its elements stop being replaced by a refresh of the panel."""
    from selenium.common.exceptions import StaleElementReferenceException
    deadline = time.time() + timeout_s
    while True:
        try:
            return fn()
        except StaleElementReferenceException:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def wait_for(drv, predicate, timeout_s=60):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout_s, poll_frequency=0.25,
                         ignored_exceptions=(StaleElementReferenceException,)).until(predicate)


def chart(drv, panel):
    """(data-buckets, data-step-ms, markers' start_ms, axis unit text) of a panel's chart."""
    return drv.execute_script("""
        const s = document.querySelector(`#${arguments[0]} svg.history`);
        if (!s) return null;
        return [Number(s.dataset.buckets), Number(s.dataset.stepMs),
                [...s.querySelectorAll('circle.pt')].map(c => Number(c.dataset.startMs)),
                s.querySelector('.axis-unit').textContent,
                s.querySelectorAll('path.band').length, s.querySelectorAll('path.avg').length,
                s.querySelectorAll('.tick-x').length];""", panel)


def state(drv, panel):
    return drv.execute_script("return document.getElementById(arguments[0]).dataset.state", panel)


def test_zone_and_device_history_in_headless_chromium(stack, data, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    drv = browser
    drv.get(stack.gateway_url + "/index.html")
    wait_for(drv, lambda d: state(d, "panel-temperature") == "ok")

    def zone_row():
        rows = [g for g in drv.find_elements(By.CSS_SELECTOR, "#panel-temperature .zone-row")
                if g.get_attribute("data-zone") == data.zone]
        assert len(rows) == 1, "the zone's row is not in the temperature chart"
        return rows[0]

    wait_for(drv, lambda d: retry_stale(lambda: len([g for g in d.find_elements(
        By.CSS_SELECTOR, "#panel-temperature .zone-row") if g.get_attribute("data-zone") == data.zone]) == 1))
    retry_stale(lambda: zone_row().click())

    # the zone's chart: one marker per minute bucket, avg line and band, the unit
    wait_for(drv, lambda d: state(d, "panel-zone") == "ok" and (chart(d, "panel-zone") or [0])[0] == 5)
    buckets, step_ms, starts, unit, bands, lines, xticks = chart(drv, "panel-zone")
    assert step_ms == MINUTE
    assert starts == sorted(data.zone_1m)
    assert unit == "temperature (°C)"
    assert bands >= 1 and lines == bands  # one band and one line per run of buckets
    assert xticks >= 4  # local-time labels along a 24 h axis
    assert drv.find_element(By.ID, "zone-name").get_attribute("textContent") == data.zone
    assert "7 readings" in drv.find_element(By.CSS_SELECTOR, "#panel-zone .summary").text
    axis = drv.find_element(By.CSS_SELECTOR, "#panel-zone svg.history .axis-time").get_attribute("textContent")
    assert axis.startswith("local time (UTC") and axis.endswith("· 1m buckets")
    assert drv.execute_script("return location.hash").startswith("#zone=")

    # hovering the marker of minute B+25 (no other bucket within minutes of it)
    # shows its bucket: two readings averaging 20.0 °C
    marker = drv.find_element(By.CSS_SELECTOR, f"#panel-zone circle.pt[data-start-ms='{data.base + 25 * MINUTE}']")
    ActionChains(drv).move_to_element(marker).perform()
    wait_for(drv, lambda d: d.find_element(By.ID, "tooltip").is_displayed(), 10)
    tip = drv.find_element(By.ID, "tooltip").text.splitlines()
    assert tip[1:] == ["avg 20.0 °C", "min 19.0 °C · max 21.0 °C", "2 readings"], tip

    # the zone's devices: the two silent ones (device health) and the one reporting now
    def device_ids(d):
        return sorted(b.get_attribute("data-device") for b in d.find_elements(By.CSS_SELECTOR, "#zone-devices .device"))

    assert wait_for(drv, lambda d: retry_stale(lambda: device_ids(d) == sorted([data.d1, data.d2, data.d3])))

    def device_button():
        return [b for b in drv.find_elements(By.CSS_SELECTOR, "#zone-devices .device")
                if b.get_attribute("data-device") == data.d1][0]

    retry_stale(lambda: device_button().click())
    wait_for(drv, lambda d: state(d, "panel-device") == "ok" and (chart(d, "panel-device") or [0])[0] == 3)
    buckets, step_ms, starts, unit, _, _, _ = chart(drv, "panel-device")
    assert (step_ms, starts, unit) == (MINUTE, data.d1_1m, "temperature (°C)")
    assert drv.find_element(By.ID, "device-name").get_attribute("textContent") == data.d1
    assert retry_stale(lambda: device_button().get_attribute("aria-pressed")) == "true"

    # its alerts, newest first, the API's text as text (no element from it)
    rows = drv.find_elements(By.CSS_SELECTOR, "#device-alerts li")
    got = [(li.get_attribute("data-severity"), li.find_element(By.CSS_SELECTOR, ".code").text,
            li.find_element(By.CSS_SELECTOR, ".text").get_attribute("textContent")) for li in rows]
    assert got == [("critical", data.stop, "stopped <script>x</script>"),
                   ("warning", data.hot, "<b>hot</b> & rising")]
    assert drv.find_elements(By.CSS_SELECTOR, "#device-alerts b, #device-alerts script") == []

    drv.save_screenshot(str(tmp_path / "dashboard-history-desktop.png"))
    print("screenshot:", tmp_path / "dashboard-history-desktop.png")

    # the 7 d window: 10-minute buckets (the smallest step giving at most 1,500)
    drv.find_element(By.CSS_SELECTOR, "#window button[data-window='7d']").click()
    wait_for(drv, lambda d: (chart(d, "panel-device") or [0, 0])[1] == 10 * MINUTE and
             (chart(d, "panel-zone") or [0, 0])[1] == 10 * MINUTE)
    assert chart(drv, "panel-device")[0] == data.d1_10m
    assert chart(drv, "panel-zone")[0] == data.zone_10m
    assert "window=7d" in drv.execute_script("return location.hash")


def test_pipeline_panel_has_a_row_per_partition(stack, browser):
    from selenium.webdriver.common.by import By

    drv = browser
    drv.get(stack.gateway_url + "/index.html")
    wait_for(drv, lambda d: state(d, "panel-pipeline") == "ok")

    def rows(d):
        return d.execute_script("""
            return [...document.querySelectorAll('#panel-pipeline tbody tr')].map(tr =>
                [tr.dataset.topic, Number(tr.dataset.partition), tr.dataset.verdict,
                 tr.querySelector('.verdict').className, tr.cells.length]);""")

    got = rows(drv)
    assert {(t, p) for t, p, *_ in got} == PARTITIONS and len(got) == len(PARTITIONS)
    for _, _, verdict, cls, cells in got:
        assert verdict in VERDICTS and cls == f"verdict v-{verdict}" and cells == 7
    # the one-line verdict, coloured by what it says
    text, cls = drv.execute_script("""const v = document.getElementById('pipeline-verdict');
        return [v.textContent, v.className];""")
    assert text.strip()
    assert ("v-in-sync" in cls.split()) == (text == "in sync"), (text, cls)
    assert drv.find_element(By.CSS_SELECTOR, "#pipeline-p50 .l").text.lower() == "latency p50"
    assert drv.find_element(By.CSS_SELECTOR, "#pipeline-p99 .l").text.lower() == "latency p99"


def test_narrow_screen_and_hidden_tab(stack, data, browser, tmp_path):
    from selenium.webdriver.common.by import By

    drv = browser
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": 375, "height": 2400, "deviceScaleFactor": 1, "mobile": True})
    q = requests.utils.quote
    drv.get(f"{stack.gateway_url}/index.html#zone={q(data.zone)}&device={q(data.d1)}")
    wait_for(drv, lambda d: state(d, "panel-device") == "ok" and state(d, "panel-zone") == "ok")
    drv.execute_script("performance.setResourceTimingBufferSize(10000)")
    assert drv.execute_script("return window.innerWidth") == 375
    # nothing wider than the screen, and charts drawn 1:1 (text at its CSS size)
    assert drv.execute_script("return document.documentElement.scrollWidth") <= 375
    for panel in ("panel-zone", "panel-device"):
        w, vb = drv.execute_script("""const s = document.querySelector(`#${arguments[0]} svg.history`);
            return [s.getBoundingClientRect().width, s.viewBox.baseVal.width];""", panel)
        assert w <= 375 and abs(w - vb) <= 2, (panel, w, vb)
    assert chart(drv, "panel-zone")[0] == 5
    drv.save_screenshot(str(tmp_path / "dashboard-history-375.png"))
    print("screenshot:", tmp_path / "dashboard-history-375.png")

    # a hidden tab polls nothing; shown again, it polls at once
    count = "return performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/')).length"
    drv.execute_script("""Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
                          document.dispatchEvent(new Event('visibilitychange'));""")
    time.sleep(1)  # requests already under way end
    before = drv.execute_script(count)
    time.sleep(11)  # two poll intervals
    assert drv.execute_script(count) == before
    assert drv.find_element(By.ID, "status-text").text == "paused (tab hidden)"
    drv.execute_script("""Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
                          document.dispatchEvent(new Event('visibilitychange'));""")
    assert wait_for(drv, lambda d: d.execute_script(count) > before, 10)
