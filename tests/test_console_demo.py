"""The bundled demo, as a new user runs it: `monitor run --config config/demo.toml` serves the
console, prints its address and a demo login, and its alerts carry one-tap links that work."""

import re
import shutil
import signal
import threading
from pathlib import Path

import httpx

from .conftest import spawn, wait_for
from .console_world import csrf, free_port

REPO = Path(__file__).resolve().parent.parent


def test_the_demo_serves_the_console_and_its_alerts_links_acknowledge(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    demo_port, web_port = free_port(), free_port()
    for name in ("demo.toml", "demo-apprise.yml"):
        path = config / name
        path.write_text(path.read_text(encoding="utf-8").replace("8765", str(demo_port)).replace("8080", str(web_port)),
                        encoding="utf-8")
    proc = spawn(config / "demo.toml")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, b"")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("演示值班台" in line.decode() for line in lines), what="the demo login line")
        login = next(line.decode() for line in lines if "演示值班台" in line.decode())
        m = re.search(r"演示值班台：(http://127\.0\.0\.1:\d+)/　账号 (\S+)　密码 (\S+)（", login)
        assert m and m.group(1) == f"http://127.0.0.1:{web_port}", login
        base, name, password = m.groups()

        log = tmp_path / "demo-state" / "demo-alerts.log"
        wait_for(lambda: log.exists() and "/a/" in log.read_text(encoding="utf-8"), what="an alert with a one-tap link")
        link = re.search(rf"{re.escape(base)}/a/[\w.\-]+", log.read_text(encoding="utf-8")).group(0)
        with httpx.Client(timeout=10) as phone:
            page = phone.get(link)
            assert page.status_code == 200 and "确认收到事件" in page.text
            done = phone.post(link, data={"csrf": csrf(phone, link)})
            assert "已确认" in done.text
        with httpx.Client(base_url=base, timeout=10) as desk:
            r = desk.post("/login", data={"name": name, "password": password, "csrf": csrf(desk, "/login")})
            assert r.status_code == 303
            board = desk.get("/").text
            assert "值班台" in board and "已确认" in board
        # the district government's own notice about the river: proposed as that incident's answer
        wait_for(lambda: "官方渠道已发布" in log.read_text(encoding="utf-8"), timeout=45, what="the official notice proposed as evidence")
        assert "关于城东河道黑臭水体整治情况的通报" in log.read_text(encoding="utf-8")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
