"""`monitor sources …` and `monitor posts …`: where posts come from, and posts set aside."""

from __future__ import annotations

import sys
from pathlib import Path

from monitor import secrets
from monitor.cli.common import command, group, open_db
from monitor.clock import SystemClock, show
from monitor.config import load


def register(sub) -> None:
    ss = group(sub, "sources", "数据来源", "sources_command")
    q = command(ss, "list", "列出来源及其状态、最近错误（先打印汇总行）", _sources_list, database=True)
    q.add_argument("--failing", action="store_true", help="只列出抓取失败的来源")
    q.add_argument("--quiet", action="store_true", help="只列出沉寂（长时间无新帖）的来源")
    q.add_argument("--name", help="只列出名称含此文字的来源")
    q.add_argument("--limit", type=int, default=100, help="最多列出几个（默认 100；0 为全部）")
    q = command(ss, "test", "抓取一次并显示将提取的内容（不写入数据库）", _sources_test)
    q.add_argument("name", help="来源名称")
    q.add_argument("--limit", type=int, default=10, help="最多显示几条（默认 10）")
    q = command(ss, "import-opml", "把 OPML 订阅列表转换为 [[source]] 配置", _sources_import_opml)
    q.add_argument("file", help="OPML 文件")
    q.add_argument("--out", help="写入此文件（不存在时新建；再在配置中加 source_files = [\"文件名\"]）；默认打印到终端")
    q.add_argument("--interval", default="10m", help="抓取间隔（默认 10m）")

    ps = group(sub, "posts", "帖文：处理失败而被搁置的帖文", "posts_command")
    q = command(ps, "failed", "列出多次处理失败、已搁置的帖文及其错误", _posts, database=True)
    q.add_argument("--limit", type=int, default=50, help="最多列出几条（默认 50）")
    q = command(ps, "retry", "把搁置的帖文放回待处理（守护进程会在几秒内重新处理）", _posts, database=True)
    q.add_argument("ids", nargs="+", type=int, help="帖文编号（monitor posts failed 中的 #）")


def _posts(args) -> int:
    from sqlalchemy import func, select, update

    from monitor.store.models import Post, Source

    _cfg, _engine_, sessions = open_db(args)
    failed = Post.process_error.is_not(None)
    if args.posts_command == "retry":
        with sessions.begin() as session:
            known = set(session.scalars(select(Post.id).where(Post.id.in_(args.ids), failed)))
            session.execute(update(Post).where(Post.id.in_(known))
                            .values(processed_at=None, process_error=None, process_attempts=0))
        for post_id in args.ids:
            print(f"帖文 #{post_id}：{'已放回待处理' if post_id in known else '不是搁置的帖文，未改动'}")
        return 0 if len(known) == len(set(args.ids)) else 1
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(Post).where(failed))
        rows = session.execute(
            select(Post.id, Source.name, Post.external_id, Post.title, Post.body, Post.process_attempts,
                   Post.processed_at, Post.process_error)
            .join(Source, Source.id == Post.source_id).where(failed).order_by(Post.id.desc()).limit(args.limit)
        ).all()
    if not total:
        print("没有搁置的帖文")
        return 0
    print(f"搁置的帖文共 {total} 条{f'（显示最近 {len(rows)} 条）' if total > len(rows) else ''}：")
    for post_id, source, external_id, title, body, attempts, at, error in rows:
        print(f"#{post_id}【{source}】{(title or body or '')[:40]}　（来源 id {external_id}）")
        print(f"    失败 {attempts} 次，{show(at)} 搁置：{secrets.redact(error or '')[:300]}")
    print("重新处理：monitor posts retry 编号 …")
    return 0


def _sources_list(args) -> int:
    """A summary line, then the sources asked for: filtered and limited in the query, so
    10,000 sources answer as fast as ten."""
    from sqlalchemy import case, func, select

    from monitor.store.models import Source

    cfg, _engine_, sessions = open_db(args)
    configured = {s.name for s in cfg.main.source}
    q = select(Source).where(Source.kind != "replay")
    if args.failing:
        q = q.where(Source.consecutive_failures > 0)
    if args.quiet:
        q = q.where(Source.health_state == "quiet")
    if args.name:
        q = q.where(Source.name.contains(args.name))
    with sessions() as session:
        total, failing, quiet = session.execute(
            select(func.count(), func.coalesce(func.sum(case((Source.consecutive_failures > 0, 1), else_=0)), 0),
                   func.coalesce(func.sum(case((Source.health_state == "quiet", 1), else_=0)), 0))
            .where(Source.kind != "replay")
        ).one()
        matching = session.scalar(select(func.count()).select_from(q.subquery()))
        rows = session.scalars(q.order_by(Source.name).limit(args.limit or None)).all()
        stored = set(session.scalars(select(Source.name)))
    unpolled = sorted(configured - stored)
    print(f"来源 {len(configured)} 个（配置中）：失败 {failing}，沉寂 {quiet}，正常 {total - failing - quiet if total else 0}"
          f"{f'，尚未抓取 {len(unpolled)}' if unpolled else ''}；数据库中 {total} 个")
    filtered = args.failing or args.quiet or args.name
    if not filtered:
        for name in unpolled[: args.limit or None]:
            print(f"{name}：尚未抓取")
    for r in rows:
        flag = "" if r.name in configured else "（已不在配置中）"
        state = "正常" if r.consecutive_failures == 0 else f"失败（连续 {r.consecutive_failures} 次）"
        if r.health_state == "quiet":
            state += f"；沉寂（自 {show(r.health_since)} 起无新帖文）"
        kind = {"feed": "订阅源", "json": "JSON 留言板", "html": "网页列表"}.get(r.kind, r.kind)
        print(f"{r.name}{flag}【{kind}】：{state}；帖文 {r.posts_total} 条；最近成功 {show(r.last_success_at)}；"
              f"最近新帖 {show(r.last_new_post_at)}；下次 {show(r.next_poll_at)}")
        print(f"    {r.url}")
        if r.last_error:
            print(f"    最近错误（{show(r.last_error_at)}）：{r.last_error}")
    if matching > len(rows):
        print(f"……另有 {matching - len(rows)} 个未列出（--limit 0 全部列出，或用 --failing、--quiet、--name 筛选）")
    return 0


def _sources_test(args) -> int:
    from monitor.sources.feed import ParseError
    from monitor.sources.http import FetchError, make_client
    from monitor.sources.poll import Poller
    from monitor.sources.http import Throttled

    cfg = load(args.config)
    source = next((s for s in cfg.main.source if s.name == args.name), None)
    if source is None:
        names = "、".join(s.name for s in cfg.main.source) or "（无）"
        print(f"没有名为「{args.name}」的来源；已配置：{names}", file=sys.stderr)
        return 2
    clock = SystemClock()
    with make_client(cfg.main.http) as client:
        poller = Poller(sessions=None, client=client, http=cfg.main.http, clock=clock)
        try:
            read = poller.read(source, None, None, None, clock.now())
        except (FetchError, ParseError, Throttled) as e:
            print(f"抓取失败：{secrets.redact(str(e))}", file=sys.stderr)
            return 1
        except Exception as e:  # a parser's bug must still read as a sentence, not a traceback
            print(f"抓取失败：内部错误 {type(e).__name__}: {secrets.redact(str(e))}", file=sys.stderr)
            return 1
    print(f"来源「{source.name}」：提取到 {len(read.posts)} 条（未写入数据库）")
    for post in read.posts[: args.limit]:
        print(f"- [{post.external_id}] {post.title or post.body[:40]}")
        print(f"    发布：{show(post.published_at)}　作者：{post.author or '—'}　链接：{post.url or '—'}")
        if post.replied is not None:
            print(f"    答复：{post.reply_status or ('已答复' if post.replied else '未答复')}{'，' + show(post.reply_at) if post.reply_at else ''}")
        if post.body and post.title:
            print(f"    正文：{post.body[:80]}{'…' if len(post.body) > 80 else ''}")
    for problem in read.problems:
        print(f"  问题：{problem}", file=sys.stderr)
    return 0


def _sources_import_opml(args) -> int:
    from monitor.sources.opml import OpmlError, read_opml, to_toml

    try:
        feeds = read_opml(Path(args.file).read_bytes())
    except OpmlError as e:
        print(f"{args.file}: {e}", file=sys.stderr)
        return 2
    existing_urls, existing_names = set(), set()
    config_path = Path(args.config)
    if config_path.exists():
        cfg = load(config_path)
        existing_urls = {s.url for s in cfg.main.source}
        existing_names = {s.name for s in cfg.main.source}
    fresh, names = [], set(existing_names)
    for name, url in feeds:
        if url in existing_urls:
            continue
        unique, n = name, 2
        while unique in names:
            unique, n = f"{name}（{n}）", n + 1
        names.add(unique)
        fresh.append((unique, url))
    text = to_toml(fresh, args.interval)
    skipped = len(feeds) - len(fresh)
    if args.out:
        out = Path(args.out)
        if out.exists():
            print(f"{out} 已存在，不覆盖；请换一个文件名", file=sys.stderr)
            return 2
        out.write_text("# 由 monitor sources import-opml 生成\n\n" + text, encoding="utf-8")
        print(f"已写入 {len(fresh)} 个来源到 {out}（跳过已配置的 {skipped} 个）；在配置中加入 source_files = [\"{out.name}\"] 后生效")
    else:
        sys.stdout.write(text)
    return 0
