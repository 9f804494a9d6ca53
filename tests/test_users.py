"""`monitor users`: accounts made and managed from the server's shell, passwords from stdin."""

import io
import sys

from monitor import accounts
from monitor.cli import main
from monitor.store import db
from monitor.store.models import User

from .conftest import utc


def run(args, stdin="", capsys=None, monkeypatch=None):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_token_disable_and_reset(make_config, capsys, monkeypatch, tmp_path):
    cfg = make_config()
    path = str(cfg.path)
    code, out, _ = run(["users", "add", "李明", "--role", "值班员", "--department", "应急管理局", "--config", path],
                       "s3cure-pass\n", capsys, monkeypatch)
    assert code == 0 and "已添加账号「李明」（值班员，应急管理局）" in out
    code, _, err = run(["users", "add", "李明", "--role", "值班员", "--config", path], "s3cure-pass\n", capsys, monkeypatch)
    assert code == 1 and "已存在" in err
    code, _, err = run(["users", "add", "王", "--role", "值班员", "--config", path], "short\n", capsys, monkeypatch)
    assert code == 1 and "至少 8 个字符" in err

    code, out, _ = run(["users", "list", "--config", path], "", capsys, monkeypatch)
    assert "李明\t值班员\t应急管理局\t正常" in out

    engine = db.make_engine(cfg.database_url())
    sessions = db.session_factory(engine)
    with sessions() as s:
        user = s.query(User).one()
        assert user.password_hash.startswith("$argon2") and "s3cure-pass" not in user.password_hash

    code, out, _ = run(["users", "token", "李明", "--label", "OA", "--config", path], "", capsys, monkeypatch)
    token = out.strip().splitlines()[-1]
    assert code == 0 and token.startswith("mon_")
    with sessions.begin() as s:
        assert accounts.by_token(s, token, utc(2026, 12, 1)).name == "李明"

    code, out, _ = run(["users", "reset-password", "李明", "--config", path], "another-pass\n", capsys, monkeypatch)
    assert code == 0 and "原有会话已失效" in out
    with sessions.begin() as s:
        assert accounts.login(s, "李明", "another-pass", utc(2026, 12, 1), 10, utc(2026, 12, 2) - utc(2026, 12, 1)).epoch == 1

    code, out, _ = run(["users", "disable", "李明", "--config", path], "", capsys, monkeypatch)
    assert code == 0
    with sessions.begin() as s:
        assert accounts.by_token(s, token, utc(2026, 12, 1)) is None
    code, out, _ = run(["users", "list", "--config", path], "", capsys, monkeypatch)
    assert "已停用" in out
    engine.dispose()
