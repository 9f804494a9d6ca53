"""The console in a real browser (Debian's Chromium driven by Playwright; nothing downloaded):
log in, see the board count down, open an alert's one-tap link on a phone, acknowledge,
record 发布权威信息 with an evidence link, and see the clock stop and the timeline grow."""

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from .console_world import PASSWORD, ConsoleWorld

CHROMIUM = os.environ.get("MONITOR_CHROMIUM", "/usr/bin/chromium")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright 未安装（pip install -e '.[test]'）")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"没有 Chromium（{CHROMIUM}）：apt-get install chromium")
# MONITOR_SCREENSHOTS=docs/screenshots keeps the README's pictures from this run.
SHOTS = os.environ.get("MONITOR_SCREENSHOTS")


@pytest.fixture
def world(make_config, receiver):
    # The page counts down on the browser's clock: the monitor's must be real time here.
    # 值班员小李 holds the duty tier's address: the one-tap link acknowledges in that name.
    w = ConsoleWorld(make_config, receiver, start=datetime.now(timezone.utc).replace(microsecond=0),
                     extra='[[person]]\nname = "值班员小李"\ntags = ["duty"]\n')
    yield w
    w.close()


@pytest.fixture
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SHOTS) / path.name)


def log_in(page, name: str) -> None:
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_from_an_alert_on_a_phone_to_a_stopped_clock(world, browser, tmp_path):
    world.user("值班员小李", "值班员")
    world.post("开发区化工厂发生爆炸 现场浓烟滚滚", "网友称听到巨响，附近居民已疏散")
    world.post("城东河道发黑发臭，夏天气味难闻")
    assert world.deliver() == 2
    link = next(l for l in world.ack_links())

    desk = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    desk.goto(world.base + "/")
    log_in(desk, "值班员小李")
    desk.wait_for_selector("ol.board")
    countdown = desk.locator("time.countdown").first
    # the script has taken over the server's text: coloured by time left (5 h: not yet urgent)
    desk.wait_for_selector("time.countdown.warn, time.countdown.ok")
    assert countdown.inner_text().startswith("剩余 4小时")
    shot(desk, tmp_path, "desktop-board")

    phone_ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                    has_touch=True, locale="zh-CN")
    phone = phone_ctx.new_page()
    phone.goto(link)
    assert "确认收到事件 #1" in phone.inner_text("h1")
    shot(phone, tmp_path, "phone-link")
    assert "将以「值班员小李（告警链接）」的名义确认收到" in phone.inner_text("main")
    phone.click("button.primary")
    assert "已确认" in phone.inner_text("main")
    phone.click("text=查看事件与登记回应")
    log_in(phone, "值班员小李")
    phone.wait_for_selector("ul.clocks")
    assert phone.url.endswith("/incidents/1")
    steps_before = phone.locator("ol.timeline li").count()
    release = phone.locator("li.clock[data-clock=发布权威信息]")
    release.locator("input[name=evidence]").fill("https://www.example.gov.cn/xwfb/2026/1.html")
    release.locator("input[name=note]").fill("已发布情况通报")
    release.locator("button[type=submit]").click()
    phone.wait_for_selector("li.clock.met[data-clock=发布权威信息]")
    state = phone.inner_text("li.clock[data-clock=发布权威信息] .clock-state")
    assert state.startswith("已于 ") and "完成" in state
    assert phone.locator("li.clock[data-clock=发布权威信息] time.countdown").count() == 0, "the clock stopped"
    assert phone.locator("ol.timeline li").count() == steps_before + 1
    assert "登记回应（值班员小李）" in phone.inner_text("ol.timeline")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is wider than the phone ({width}px)"
    shot(phone, tmp_path, "phone-incident")

    desk.goto(world.base + "/incidents/1")
    shot(desk, tmp_path, "desktop-incident")
