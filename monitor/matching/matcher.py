"""The watchword rule engine: which rules a post matches, and why.

Cheap work first: one Aho–Corasick scan finds every word any rule mentions; a post
without a rule's trigger term is done there. jieba segments only the blocks around
occurrences that need a boundary check. Every verdict carries its reasons.

Rule keys (see config/rules.py, WatchRule):
  terms         any of these (and their aliases) triggers the rule
  all           each group: at least one of its words must also occur
  none          any of these words: the post does not match
  none_phrases  a phrase that contains an occurrence (of a term, an all word or a near word)
                vetoes that occurrence: 黑 in 黑烟 is not a black river
  near          two words within N characters of each other
  boundary      word (default): may sit inside a compound, may not cut across two words;
                token: a whole jieba word; none: plain substring. Per rule or per term.
  min_count     at least this many valid term occurrences
  fields        title, body
  lead_chars    only the title and the first N characters of the body count: a complaint says
                what it is about first; a long petition that lists it as item 6 is about something else
  score         the occurrences' weights (a term's `weight`, default 1) must add up to this
  min_count     also per field: {title = 1, body = 2} holds when either field reaches its count
  group         rules of one group: a post goes to the first of them (file order) that matches
  gaps          separators, spaces, emoji and invisible characters may stand between a term's
                characters (拆 迁, 拆-迁, 拆😡迁); per rule or per term
A term may carry conditions of its own: `near` words within `within` characters (质量 counts
only near 商品/产品), a `weight`, `gaps`.

Bounded cost: each field is matched up to `max_chars` characters ([matching] max_chars; the
cut is said in the verdict's checks), and every step is linear in the text and its
occurrences, so one hostile post cannot hold the pipeline.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from pathlib import Path

import ahocorasick

from monitor.config.rules import TermEntry, WatchRule
from monitor.matching.compiled import CompiledRule, Ref, Word, cuts_allowed, listed, refs_of
from monitor.matching.normalize import normalize, normalize_map, original_span
from monitor.matching.segment import Segmenter
from monitor.matching.spans import FIELD_NAMES, LazyCuts, Phrases, closest, is_gap
from monitor.matching.verdicts import (  # the engine's types, importable from here as before
    BOUNDARY_NAMES, EXPLAIN_HITS, FIELDS, MAX_CHARS, Match, TermHit, Verdict, post_text,
)
from monitor.severity import rank

__all__ = ["BOUNDARY_NAMES", "EXPLAIN_HITS", "FIELDS", "MAX_CHARS", "Match", "Matcher", "TermEntry", "TermHit", "WatchRule",
           "Verdict", "post_text"]


class Matcher:
    def __init__(self, rules: list[WatchRule], cache_dir: Path | None = None, max_chars: int = MAX_CHARS):
        self.rules = rules
        self.max_chars = max_chars  # 0: no cut
        self._compiled: list[CompiledRule] = []
        self._words: dict[str, Word] = {}
        for rule in rules:
            c = CompiledRule(
                rule,
                tuple(refs_of(rule.terms, rule.boundary, rule.gaps)),
                tuple(tuple(refs_of(group, rule.boundary)) for group in rule.all),
                tuple(refs_of(rule.none, rule.boundary)),
                tuple(normalize(p) for p in rule.none_phrases),
                tuple((tuple(refs_of(listed(n.a), rule.boundary)), tuple(refs_of(listed(n.b), rule.boundary)), n.within) for n in rule.near),
                {},
            )
            for ref in c.triggers:
                c.trigger_of.setdefault(ref.key, []).append(ref)
            self._compiled.append(c)
            refs = [*c.triggers, *(r for g in c.groups for r in g), *c.excluded, *(r for n in c.near for side in n[:2] for r in side),
                    *(n for t in c.triggers for n in t.near)]
            for ref in refs:
                word = self._words.setdefault(ref.key, Word(ref.key, allowed_cuts=cuts_allowed(ref.key)))
                word.boundaries.add(ref.boundary)
            for phrase in c.phrases:
                self._words.setdefault(phrase, Word(phrase)).boundaries.add("none")
        self._automaton = ahocorasick.Automaton()
        for key in self._words:
            if key:
                self._automaton.add_word(key, (key, len(key) - 1))
        self._empty = not self._words
        if not self._empty:
            self._automaton.make_automaton()
        self._triggers: dict[str, list[CompiledRule]] = {}
        for c in self._compiled:
            for ref in c.triggers:
                self._triggers.setdefault(ref.key, []).append(c)
        jieba_words = []
        for w in self._words.values():
            if w.boundaries - {"none"}:
                # jieba always cuts at '·', '-' and spaces: 乌鲁木齐·米东 reaches it as 乌鲁木齐 | · | 米东,
                # so each part goes into the dictionary too, or its HMM may cut inside a part.
                jieba_words.extend([w.key, *(p for p in re.split(r"[^\u4e00-\u9fd5a-zA-Z0-9+#&._%-]+", w.key) if len(p) > 1)])
        self.segmenter = Segmenter(jieba_words, cache_dir)
        self._order = {c.spec.name: i for i, c in enumerate(self._compiled)}
        self._gap_keys = {ref.key for c in self._compiled for ref in c.triggers if ref.gaps and len(ref.key) > 1}

    # ---- scanning ------------------------------------------------------------------

    def _scan(self, normalized: str) -> dict[str, list[tuple[int, int]]]:
        found: dict[str, list[tuple[int, int]]] = {}
        if self._empty or not normalized:
            return found
        get = found.get
        for end, (key, back) in self._automaton.iter(normalized):
            spans = get(key)
            if spans is None:
                found[key] = spans = []
            spans.append((end - back, end + 1))
        return found

    def match(self, title: str, body: str) -> list[Verdict]:
        """The rules this post matches, most severe first."""
        return [v for v in self.evaluate(title, body) if v.matched]

    def evaluate(self, title: str, body: str, every_rule: bool = False) -> list[Verdict]:
        """A verdict for each rule the post triggers (or, with every_rule, for every rule)."""
        texts = {"title": title or "", "body": body or ""}
        cut = {}
        if self.max_chars:
            for f, t in texts.items():
                if len(t) > self.max_chars:
                    cut[f] = len(t)
                    texts[f] = t[: self.max_chars]
        norm = {f: normalize_map(t) for f, t in texts.items()}
        found = {f: self._scan(norm[f][0]) for f in FIELDS}
        gapped = {f: self._scan_gapped(norm[f][0], found[f]) for f in FIELDS} if self._gap_keys else None
        if every_rule:
            candidates = list(self._compiled)
        else:
            # Through the index from word to rules: cost follows what occurs, not the rule count.
            chosen: dict[int, CompiledRule] = {}
            for f in FIELDS:
                for key in [*found[f], *(gapped[f] if gapped else ())]:
                    for c in self._triggers.get(key, ()):
                        if f in c.spec.fields:
                            chosen[id(c)] = c
            candidates = list(chosen.values())
        if not candidates:
            return []
        cuts = LazyCuts(self, norm, found)
        notes = tuple(f"{FIELD_NAMES[f]}过长（{n} 字），只匹配了前 {self.max_chars} 字" for f, n in cut.items())
        verdicts = [self._judge(c, texts, norm, found, cuts, notes, gapped) for c in candidates]
        verdicts = self._first_of_group(verdicts)
        verdicts.sort(key=lambda v: (not v.matched, rank(v.rule.severity), self._order[v.rule.name]))
        return verdicts

    def _first_of_group(self, verdicts: list[Verdict]) -> list[Verdict]:
        """Within a group, the first rule (in file order) that matches takes the post."""
        winner: dict[str, Verdict] = {}
        for v in sorted((v for v in verdicts if v.matched and v.rule.group), key=lambda v: self._order[v.rule.name]):
            winner.setdefault(v.rule.group, v)
        out = []
        for v in verdicts:
            first = winner.get(v.rule.group) if v.matched and v.rule.group else None
            if first is not None and first is not v:
                v = Verdict(v.rule, False, v.hits, v.rejected,
                            (*v.checks, f"同组「{v.rule.group}」中排在前面的规则「{first.rule.name}」已匹配：归入该规则"))
            out.append(v)
        return out

    def _scan_gapped(self, text: str, plain: dict) -> dict[str, list[tuple[int, int]]]:
        """Occurrences of `gaps` terms with separators between their characters, found in the
        text with the separators taken out, as spans of the text: only those plain scanning
        missed (the span is longer than the term)."""
        kept = [i for i, ch in enumerate(text) if not is_gap(ch)]
        if len(kept) == len(text):
            return {}
        compact = "".join(text[i] for i in kept)
        out: dict[str, list[tuple[int, int]]] = {}
        for key, spans in self._scan(compact).items():
            if key not in self._gap_keys:
                continue
            for start, end in spans:
                span = (kept[start], kept[end - 1] + 1)
                if span[1] - span[0] > len(key):
                    out.setdefault(key, []).append(span)
        return out

    def segmentation(self, text: str) -> list[str]:
        """How jieba (with the watchwords) cuts a text: for people checking rules."""
        self.segmenter.initialize()
        return [w for w, _s, _e in self.segmenter._tokenizer.tokenize(normalize(text), HMM=True)]

    # ---- judging one rule ----------------------------------------------------------

    def _valid(self, ref: Ref, f: str, span: tuple[int, int], cuts: "LazyCuts") -> str:
        """'' when the occurrence counts; otherwise the reason it does not."""
        if ref.boundary == "none":
            return ""
        start, end = span
        field_cuts = cuts.get(f)
        allowed = self._words[ref.key].allowed_cuts
        if any(c in field_cuts and (c - start) not in allowed for c in range(start + 1, end)):
            return BOUNDARY_NAMES["word"]
        if ref.boundary == "token":
            length = len(cuts.norm[f][0])
            if not ((start == 0 or start in field_cuts) and (end == length or end in field_cuts)):
                return BOUNDARY_NAMES["token"]
        return ""

    def _occurrences(self, refs, fields, found, cuts, phrases=None):
        """Valid occurrences of any of refs, outside any vetoing phrase: (ref, field, start, end)."""
        out = []
        for ref in refs:
            for f in fields:
                for span in found[f].get(ref.key, ()):
                    if not self._valid(ref, f, span, cuts) and not (phrases and phrases[f].holding(span)):
                        out.append((ref, f, *span))
        return out

    def _judge(self, c: CompiledRule, texts, norm, found, cuts, cut_notes=(), gapped=None) -> Verdict:
        rule = c.spec
        fields = [f for f in FIELDS if f in rule.fields]
        hits, rejected, checks = [], [], list(cut_notes)
        if rule.lead_chars:
            lead = rule.lead_chars
            found = {**found, "body": {k: kept for k, spans in found["body"].items() if (kept := [s for s in spans if s[1] <= lead])}}
            checks.append(f"正文只看前 {lead} 字")
        notes = len(checks)  # checks before the verdict's own

        def hit(ref, f, start, end, reason=""):
            o_start, o_end = original_span(norm[f][1], start, end)
            return TermHit(ref.shown, o_start, o_end, f, texts[f][o_start:o_end], reason)

        phrases = {f: Phrases([span for p in c.phrases for span in found[f].get(p, ())]) for f in fields}
        # Title and body as one text for distances: offsets of the body follow the title.
        offset = {"title": 0, "body": len(norm["title"][0])}
        near_words: dict[tuple, list] = {}
        weights: dict[tuple, float] = {}

        def term_near(ref, f, start, end) -> str:
            """'' when the term's own `near` condition holds, else why not."""
            if ref.near not in near_words:
                near_words[ref.near] = sorted(
                    (offset[g] + s, offset[g] + e) for r in ref.near for g in fields for s, e in found[g].get(r.key, ())
                    if not self._valid(r, g, (s, e), cuts))
            words = near_words[ref.near]
            a, b = offset[f] + start, offset[f] + end
            i = bisect_left(words, (a - ref.within - 100,))
            for s2, e2 in words[i:]:
                if s2 > b + ref.within:
                    break
                if max(0, s2 - b, a - e2) <= ref.within:
                    return ""
            return f"{ref.within} 字内没有「{'/'.join(r.written for r in ref.near)}」"

        scored = rule.score is not None
        for f in fields:
            sources = ((found[f], False), (gapped[f], True)) if gapped else ((found[f], False),)
            for table, with_gaps in sources:
                for key, spans in table.items():
                    for ref in c.trigger_of.get(key, ()):
                        if with_gaps and not ref.gaps:
                            continue
                        for start, end in spans:
                            # a term spread by separators is no jieba word: its boundary is not asked
                            reason = "" if with_gaps else self._valid(ref, f, (start, end), cuts)
                            if not reason:
                                veto = phrases[f].holding((start, end))
                                if veto:
                                    phrase = norm[f][0][veto[0]:veto[1]]
                                    reason = f"在排除短语「{phrase}」中"
                            if not reason and ref.near:
                                reason = term_near(ref, f, start, end)
                            h = hit(ref, f, start, end, reason)
                            (rejected if reason else hits).append(h)
                            if scored and not reason:
                                weights[(h.field, h.start, h.end, h.term)] = ref.weight
        hits.sort(key=lambda h: (FIELDS.index(h.field), h.start))
        if not hits:
            checks.append("关键词未出现" if not rejected else "关键词出现但都不成立")
            return Verdict(rule, False, (), tuple(rejected), tuple(checks))
        if rule.score is not None:
            total = sum(weights.get((h.field, h.start, h.end, h.term), 1.0) for h in hits)
            if total < rule.score:
                checks.append(f"关键词得分 {total:g}，低于 score = {rule.score:g}")
                return Verdict(rule, False, tuple(hits), tuple(rejected), tuple(checks))
            checks.append(f"关键词得分 {total:g}（≥ {rule.score:g}）")
        elif not isinstance(rule.min_count, int):
            per_field = rule.min_count.by_field()
            counts = {f: sum(1 for h in hits if h.field == f) for f in FIELDS}
            reached = [f for f, n in per_field.items() if counts[f] >= n]
            wanted = "或".join(f"{FIELD_NAMES[f]} {n} 次" for f, n in per_field.items())
            if not reached:
                checks.append(f"关键词成立：标题 {counts['title']} 次、正文 {counts['body']} 次，未达到 {wanted}")
                return Verdict(rule, False, tuple(hits), tuple(rejected), tuple(checks))
            checks.append(f"{FIELD_NAMES[reached[0]]}中关键词成立 {counts[reached[0]]} 次（要求 {wanted}）")
        elif len(hits) < rule.min_count:
            checks.append(f"关键词成立 {len(hits)} 次，少于 min_count = {rule.min_count}")
            return Verdict(rule, False, tuple(hits), tuple(rejected), tuple(checks))

        matched = True
        for ref in c.excluded:
            present = self._occurrences([ref], fields, found, cuts)
            if present:
                _r, f, s, e = present[0]
                checks.append(f"出现排除词「{ref.written}」（{FIELD_NAMES[f]}第 {original_span(norm[f][1], s, e)[0] + 1} 字）：不匹配")
                matched = False
        if c.excluded and matched:
            checks.append("排除词均未出现：" + "、".join(r.written for r in c.excluded))
        for group in c.groups:
            present = self._occurrences(group, fields, found, cuts, phrases)
            words = "/".join(r.written for r in group)
            if present:
                checks.append(f"同时出现「{present[0][0].written}」（{words} 之一）")
            else:
                checks.append(f"缺少「{words}」之一：不匹配")
                matched = False
        # Distances run across the title into the body, as one text (offset above): a title naming
        # the river and a body of "又黑又臭" are next to each other.

        def placed(refs):
            return [(r, offset[f] + start, offset[f] + end) for r, f, start, end in self._occurrences(refs, fields, found, cuts, phrases)]

        for a, b, within in c.near:
            close = closest(placed(a), placed(b))
            a_words, b_words = "/".join(r.written for r in a), "/".join(r.written for r in b)
            if close is not None and close[0] <= within:
                checks.append(f"「{close[1]}」与「{close[2]}」相距 {close[0]} 字（≤ {within}）")
            else:
                checks.append(f"「{a_words}」与「{b_words}」未在 {within} 字内同时出现：不匹配")
                matched = False
        if matched and len(checks) == notes:
            checks.append(f"关键词成立 {len(hits)} 次")
        return Verdict(rule, matched, tuple(hits), tuple(rejected), tuple(checks))
