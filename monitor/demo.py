"""The bundled demo: a feed and an alert receiver on loopback, so `monitor run
--config config/demo.toml` shows the whole chain with no internet.

The feed releases its posts over the first minute, dated relative to when the demo
started, so the clocks and reminders look like a real morning on duty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from monitor.clock import SHANGHAI
from monitor.config import Config, ConfigError

log = logging.getLogger(__name__)


def render_board(items: list[dict], started: datetime, now: datetime) -> bytes:
    """A 领导留言板-style JSON page: 待回复 until an item's reply time has come."""
    threads = []
    for item in items:
        appears = started + timedelta(seconds=item.get("after_s", 0))
        if appears > now:
            continue
        answered = "reply_after_s" in item and started + timedelta(seconds=item["reply_after_s"]) <= now
        published = (appears - timedelta(minutes=item.get("minutes_ago", 0))).astimezone(SHANGHAI)
        threads.append({
            "tid": item["id"], "forumName": item.get("forum", ""), "subject": item["title"], "content": item.get("body", ""),
            "dateline": published.strftime("%Y-%m-%d %H:%M:%S"), "stateInfo": "已办理" if answered else "待回复",
            "reply": item.get("reply", "") if answered else "",
        })
    return json.dumps({"result": "success", "data": {"threads": threads}}, ensure_ascii=False).encode("utf-8")


def render_rss(title: str, items: list[dict], started: datetime, now: datetime) -> bytes:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>http://127.0.0.1/</link><description>演示数据</description>",
    ]
    for item in items:
        appears = started + timedelta(seconds=item.get("after_s", 0))
        if appears > now:
            continue
        published = appears - timedelta(minutes=item.get("minutes_ago", 0))
        out.append(
            "<item>"
            f"<guid isPermaLink=\"false\">{escape(item['id'])}</guid>"
            f"<title>{escape(item['title'])}</title>"
            f"<link>{escape(item.get('url', 'http://127.0.0.1/' + item['id']))}</link>"
            f"<description>{escape(item.get('body', ''))}</description>"
            f"<pubDate>{format_datetime(published)}</pubDate>"
            "</item>"
        )
    out.append("</channel></rss>")
    return "\n".join(out).encode("utf-8")


class DemoServer:
    def __init__(self, cfg: Config):
        demo = cfg.main.demo
        self.port = demo.port
        self.feeds = json.loads(cfg.resolve(demo.posts).read_text(encoding="utf-8"))
        self.alerts_log = cfg.resolve(demo.alerts_log)
        self.alerts_log.parent.mkdir(parents=True, exist_ok=True)
        self.config_path = cfg.path
        self.started = datetime.now(timezone.utc)
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        demo = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # the daemon's own log says what matters
                pass

            def do_GET(self):
                if self.path.startswith("/api/threads"):
                    board = demo.feeds.get("board", {"items": []})
                    body = render_board(board["items"], demo.started, datetime.now(timezone.utc))
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                name = self.path.strip("/").removeprefix("feeds/").removesuffix(".xml")
                feed = demo.feeds.get(name)
                if feed is None:
                    self.send_error(404)
                    return
                body = render_rss(feed["title"], feed["items"], demo.started, datetime.now(timezone.utc))
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                demo.show_alert(payload.get("title", ""), payload.get("message", ""))
                self.send_response(200)
                self.end_headers()

        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        except OSError as e:
            raise ConfigError([
                f"演示端口 127.0.0.1:{self.port} 无法使用（{e.strerror}）：是否已有一个演示在运行？"
                f"如需换端口，请同时修改 {self.config_path} 中 [demo] port 和各 [[source]] 的 url"
            ]) from None
        threading.Thread(target=self._server.serve_forever, daemon=True, name="demo-http").start()
        log.info("演示数据源与告警接收端已在 http://127.0.0.1:%d 启动；告警同时写入 %s", self.port, self.alerts_log)

    def show_alert(self, title: str, message: str) -> None:
        stamp = datetime.now(SHANGHAI).strftime("%H:%M:%S")
        text = f"\n━━━━━━━━ 告警送达 {stamp}（北京时间）━━━━━━━━\n{title}\n{message}\n"
        sys.stdout.write(text)
        sys.stdout.flush()
        with self.alerts_log.open("a", encoding="utf-8") as f:
            f.write(text)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


DEMO_LOGIN = "demo"


def demo_login(sessions, now) -> str:
    """The demo's console account (管理员, so every action can be tried), with a new password
    each start, printed beside the console's address."""
    import secrets

    from monitor import accounts

    password = secrets.token_urlsafe(9)
    with sessions.begin() as session:
        if accounts.find(session, DEMO_LOGIN) is None:
            accounts.add(session, DEMO_LOGIN, "管理员", password, now, "演示")
        else:
            accounts.set_password(session, DEMO_LOGIN, password)
    return password
