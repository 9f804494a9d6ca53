"""Masking hides secrets, and only secrets, whatever the URL's scheme."""

import logging

from monitor import secrets
from monitor.store.db import safe_url


def test_a_database_user_is_not_a_secret_but_its_password_is():
    secrets.register_url("postgresql+psycopg://postgres@127.0.0.1:5432/test", user_is_secret=False)
    line = "数据库：postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert secrets.redact(line) == line  # was ***ql+psycopg://***@…
    secrets.register_url("postgresql+psycopg://monitor:s3cret-pw@db.local/monitor", user_is_secret=False)
    assert secrets.redact("连接 postgresql+psycopg://monitor:s3cret-pw@db.local/monitor 失败：s3cret-pw") == \
        "连接 postgresql+psycopg://monitor:***@db.local/monitor 失败：***"
    assert safe_url("postgresql+psycopg://monitor:s3cret-pw@db.local/monitor") == "postgresql+psycopg://monitor:***@db.local/monitor"


def test_a_token_in_the_user_part_of_an_alert_url_is_a_secret(caplog):
    secrets.register_url("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@")
    secrets.register_url("dingtalk://0f3c9a7be4d14e25b6a8@")
    logger = logging.getLogger("test.secrets")
    logger.addFilter(secrets.RedactingFilter())
    with caplog.at_level("INFO"):
        logger.info("发送失败 dingtalk://0f3c9a7be4d14e25b6a8@ 与 AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")
    assert "0f3c9a7be4d14e25b6a8" not in caplog.text and "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in caplog.text
