"""The console inside `monitor run`: uvicorn on its own thread and event loop, started after
the store is ready and stopped within the daemon's stop budget."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import uvicorn

from monitor.web.app import create_app
from monitor.web.context import Console

log = logging.getLogger(__name__)


class ConsoleServer:
    def __init__(self, console: Console):
        web = console.web
        self.host, self.port = web.host, web.port
        config = uvicorn.Config(create_app(console), host=self.host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off", proxy_headers=True, server_header=False,
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        # Off the main thread uvicorn installs no signal handlers: the daemon keeps SIGTERM/SIGHUP.
        self.thread = threading.Thread(target=self._serve, name="console", daemon=True)
        self.failed: BaseException | None = None

    def _serve(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as e:  # a port already taken ends here (uvicorn exits)
            self.failed = e

    def start(self, wait: float = 10.0) -> bool:
        """True once it listens; False (and the reason logged) if it could not."""
        self.thread.start()
        deadline = time.monotonic() + wait
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            log.error("值班台无法在 %s:%d 启动（端口被占用或地址无效）：告警与监测照常运行", self.host, self.port)
            return False
        return True

    def stop(self, timeout: float = 3.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def start_console(config, app, clock, links, demo: bool) -> ConsoleServer | None:
    """The daemon's console over its current configuration and app (getters: a reload swaps
    them); the demo's also gets a login, printed beside the address."""
    console = Console(config, app().sessions, clock, lambda: app().incidents, lambda: app().pipeline.matcher, links)
    server = ConsoleServer(console)
    if not server.start():
        return None
    log.info("值班台：http://%s:%d/（告警链接指向 %s）", server.host, server.port, links.base_url)
    if demo:
        from monitor.demo import DEMO_LOGIN, demo_login

        print(f"演示值班台：{links.base_url}/　账号 {DEMO_LOGIN}　密码 {demo_login(console.sessions, clock.now())}"
              "（每次启动重新生成）", flush=True)
    return server
