"""What the rule engine gives: verdicts with every occurrence and check that decided them
(pure data). What it takes is the rule schema itself, monitor.config.rules: WatchRule and
TermEntry, one definition read by the rule files and by the matcher."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.config.rules import WatchRule


FIELDS = ("title", "body")
MAX_CHARS = 50_000  # default cut per field; [matching] max_chars
EXPLAIN_HITS = 100  # occurrences listed per verdict; the count says how many there were
BOUNDARY_NAMES = {"word": "跨词", "token": "非完整词"}


@dataclass(frozen=True)
class TermHit:
    term: str  # the watchword (an alias reports its term)
    start: int  # in the original field text
    end: int
    field: str = "title"
    matched: str = ""  # the text that occurred (an alias, or the term)
    reason: str = ""  # for a rejected occurrence: why


@dataclass(frozen=True)
class Verdict:
    rule: WatchRule
    matched: bool
    hits: tuple[TermHit, ...] = ()
    rejected: tuple[TermHit, ...] = ()
    checks: tuple[str, ...] = ()  # what was checked and how it came out, for people

    @property
    def terms(self) -> list[str]:
        return list(dict.fromkeys(h.term for h in self.hits))

    def explanation(self) -> dict:
        out = {
            "hits": [{"term": h.term, "text": h.matched, "field": h.field, "start": h.start, "end": h.end}
                     for h in self.hits[:EXPLAIN_HITS]],
            "rejected": [{"term": h.term, "field": h.field, "start": h.start, "end": h.end, "reason": h.reason}
                         for h in self.rejected[:EXPLAIN_HITS]],
            "checks": list(self.checks),
        }
        # A post of 10,000 occurrences is stored with the first hundred and the counts.
        if len(self.hits) > EXPLAIN_HITS:
            out["hits_total"] = len(self.hits)
        if len(self.rejected) > EXPLAIN_HITS:
            out["rejected_total"] = len(self.rejected)
        return out


Match = Verdict  # a Verdict that matched


def post_text(title: str, body: str) -> str:
    # A newline keeps jieba from joining the last title word with the first body word.
    return f"{title}\n{body}" if body else title
