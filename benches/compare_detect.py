"""PII detection in free text: amlguard against Presidio, MaskOps, polars and pyarrow, one run.

Usage (build with ``maturin develop --release`` first; peers from benches/requirements.txt):

    pip install -r benches/requirements.txt
    python benches/compare_detect.py [--rows 1000000] [--presidio-rows 20000]
                                     [--quality-rows 20000]

Prints, from one run on this machine:
  * Throughput on the synthetic free-text column ``synthetic_pii(rows, seed=1)["note"]``:
    amlguard ``detect`` and ``Policy.apply`` with ``redact_entities`` (five entities, and every
    built-in entity), with ``threads=1`` and with every CPU; a chain of five polars
    ``str.replace_all`` (e-mail, card, SSN, IPv4, phone; no validation); the same chain with
    ``pyarrow.compute.replace_substring_regex``; MaskOps ``mask_pii`` with the same five entities
    and with all its patterns; Presidio analyzer + anonymizer (pattern recognizers and the
    phonenumbers-based phone recognizer, no NER) on ``--presidio-rows`` rows, scaled to rows/s.
    Best of three runs (Presidio: one). "threads" is what the implementation was allowed to use
    (MB/s per core = MB/s / threads); "CPU busy" is process CPU time / wall time as measured.
    Then ``redact_entities`` on one thread over columns with no PII at all: a sentence the
    pre-filter skips, one with numbers that are not PII, and a paragraph with one number.
  * Quality on ``labelled_notes(quality_rows, seed=42)``: precision / recall / F1 per entity.
    Exact: a finding is a true positive when (entity, start, end) equals a labelled span.
    Overlap: same entity and overlapping character ranges, each label matched at most once.
    Count: per note and entity, min(found, labelled) true positives; the only score MaskOps
    allows, because it reports no spans (``mask_pii_audit`` returns per-family match counts
    per value and its masked text changes length), so all three are also scored this way.
    In the count table IPV4 and IPV6 are merged as IP (MaskOps' ``ip`` family covers both).

Presidio needs a spaCy pipeline even for its pattern recognizers; model downloads are not
possible here, so a blank English pipeline (tokenizer only) is written to a temporary
directory and loaded by path, and the spaCy NER recognizer is removed.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import amlguard as ag
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

# The five patterns of the regex chains, in the order they are applied (cards and SSNs before
# phones, so a phone pattern does not eat them). No validation: that is the point of the chain.
CHAIN_PATTERNS = [
    ("EMAIL", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    ("CREDIT_CARD", r"\b(?:\d[ -]?){12,18}\d\b"),
    ("US_SSN", r"\b\d{3}-\d{2}-\d{4}\b"),
    ("IPV4", r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
    ("PHONE", r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,5})(?:[ .-]?\d{2,4}){2,4}\b"),
]
FIVE_ENTITIES = [entity for entity, _ in CHAIN_PATTERNS]
MASKOPS_FIVE = ["email", "credit_card", "ssn", "ip", "phone"]
MASKOPS_FAMILIES = {
    "email": "EMAIL",
    "phone": "PHONE",
    "credit_card": "CREDIT_CARD",
    "ssn": "US_SSN",
    "iban": "IBAN",
    "ip": "IP",
}
PRESIDIO_ENTITIES = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "US_SSN": "US_SSN",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP",  # split into IPV4 / IPV6 by the matched text
    "URL": "URL",
    "DATE_TIME": "DATE",
}

Span = tuple[str, int, int]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Timing:
    seconds: float
    cpu_busy: float


def time_once(fn: Callable[[], Any]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Timing(wall, cpu / wall)


def best_of(fn: Callable[[], Any], repeat: int = 3) -> Timing:
    return min((time_once(fn) for _ in range(repeat)), key=lambda t: t.seconds)


def best_of_rounds(runs: Sequence[tuple[str, Callable[[], Any]]], rounds: int) -> dict[str, Timing]:
    """The best time of each run over `rounds` rounds, each round running every one in turn.

    A shared host's speed drifts over minutes; timing each run's repeats back to back let one
    slow stretch take all of a run's repeats, and its ratios to the others with them.
    """
    best: dict[str, Timing] = {}
    for round_number in range(1, rounds + 1):
        for name, fn in runs:
            timing = time_once(fn)
            if name not in best or timing.seconds < best[name].seconds:
                best[name] = timing
        print(f"  ... round {round_number} of {rounds} done", flush=True)
    return best


@dataclass
class SpeedTable:
    rows: int
    megabytes: float
    results: list[tuple[str, int, Timing, int]] = field(default_factory=list)

    def add(self, name: str, threads: int, timing: Timing, rows: Optional[int] = None) -> None:
        # A run on a slice is scaled to the full column: rows/s is what is compared.
        timed_rows = rows or self.rows
        scaled = Timing(timing.seconds * self.rows / timed_rows, timing.cpu_busy)
        self.results.append((name, threads, scaled, timed_rows))
        print(f"  ... {name}: {timed_rows / timing.seconds:,.0f} rows/s", flush=True)

    def print(self, reference: str) -> None:
        ref = next(t.seconds for name, _, t, _ in self.results if name == reference)
        print(f"\nThroughput: {self.rows:,} notes, {self.megabytes:,.1f} MB of text")
        print(f"(ratio: how many times faster the reference '{reference}' is)")
        header = (
            f"  {'implementation':<58} {'threads':>7} {'CPU busy':>8} {'rows/s':>11}"
            f" {'MB/s':>8} {'MB/s/core':>9} {'ratio':>9}"
        )
        print(header)
        for name, threads, timing, timed_rows in self.results:
            mb_s = self.megabytes / timing.seconds
            label = name if timed_rows == self.rows else f"{name} [{timed_rows:,} rows]"
            print(
                f"  {label:<58} {threads:>7} {timing.cpu_busy:>8.2f}"
                f" {self.rows / timing.seconds:>11,.0f} {mb_s:>8.1f} {mb_s / threads:>9.1f}"
                f" {timing.seconds / ref:>8.1f}x"
            )


# ---------------------------------------------------------------------------------------------
# Implementations under test


# Text with nothing to find: a sentence the pre-filter skips (no digit, '@', ':', '/' or '='), one
# it cannot (numbers that are no PII), and a paragraph of prose with one number, each repeated to
# a single-chunk column.
TEXT_WITHOUT_PII = {
    "no trigger byte": "No issues reported during the visit; vitals normal and next check in a"
    " few weeks, said the nurse.",
    "digits, no PII": "Follow-up visit scheduled, order #248453 shipped, version 2.1.23 of the"
    " app, room 12 at 3 pm.",
    "prose, one number": "The patient asked about the follow-up schedule and was told to call"
    " the front desk, who will send a reminder by post in 3 weeks. Refund processed after review"
    " of the account history; customer satisfied with the outcome and closed the case.",
}


def print_text_without_pii(policy: ag.Policy, rows: int) -> None:
    """Redaction throughput, one thread, on columns that hold no PII at all."""
    print(f"\nText without PII ({rows:,} rows, one chunk), every entity, threads=1:")
    for name, sentence in TEXT_WITHOUT_PII.items():
        table = pa.table({"note": [sentence] * rows})
        timing = best_of(functools.partial(policy.apply, table, threads=1))
        megabytes = len(sentence.encode()) * rows / 1e6
        print(
            f"  {name:<18} {len(sentence.encode())} bytes/row"
            f" {rows / timing.seconds:>12,.0f} rows/s {megabytes / timing.seconds:>8.1f} MB/s"
        )


def redact_policy(entities: Optional[list[str]]) -> ag.Policy:
    rule: dict[str, Any] = {"op": "redact_entities", "with": "<{entity}>"}
    if entities is not None:
        rule["entities"] = entities
    return ag.Policy.from_dict({"columns": {"note": rule}})


def polars_chain(notes: pl.Series) -> pl.Series:
    expr = pl.col("note")
    for entity, pattern in CHAIN_PATTERNS:
        expr = expr.str.replace_all(pattern, f"<{entity}>")
    return pl.DataFrame({"note": notes}).select(expr).to_series()


def pyarrow_chain(notes: pa.ChunkedArray) -> pa.ChunkedArray:
    for entity, pattern in CHAIN_PATTERNS:
        notes = pc.replace_substring_regex(notes, pattern=pattern, replacement=f"<{entity}>")
    return notes


def maskops_mask(notes: pl.Series, patterns: Optional[list[str]]) -> pl.Series:
    import maskops

    return pl.DataFrame({"note": notes}).select(maskops.mask_pii("note", patterns)).to_series()


class Presidio:
    """Presidio analyzer + anonymizer on a blank spaCy pipeline: pattern recognizers only."""

    def __init__(self, model_dir: str) -> None:
        import spacy
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        # No model can be downloaded here: a blank pipeline (tokenizer, no NER) stands in for
        # en_core_web_*, which the pattern recognizers do not need.
        spacy.blank("en").to_disk(model_dir)
        nlp_engine = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": model_dir}],
            }
        ).create_engine()
        registry = RecognizerRegistry()
        registry.load_predefined_recognizers(nlp_engine=nlp_engine, languages=["en"])
        registry.remove_recognizer("SpacyRecognizer")
        self.recognizers = sorted(r.name for r in registry.recognizers)
        self.analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=nlp_engine, supported_languages=["en"]
        )
        self.batch = BatchAnalyzerEngine(analyzer_engine=self.analyzer)
        self.anonymizer = AnonymizerEngine()
        self.entities = list(PRESIDIO_ENTITIES)
        # The e-mail and URL recognizers load the Public Suffix List through tldextract, which
        # tries the network first and logs a traceback before it falls back to its bundled
        # snapshot. Do that once here, quietly, not inside a timed run.
        logging.getLogger("tldextract").setLevel(logging.CRITICAL)
        self.analyze(["warm-up: jane@example.com https://example.com/a"])

    def analyze(self, texts: list[str]) -> list[list[Any]]:
        results = self.batch.analyze_iterator(
            texts, language="en", batch_size=256, entities=self.entities
        )
        return [list(r) for r in results]

    def redact(self, texts: list[str]) -> list[str]:
        # The anonymizer's default operator replaces each finding with "<ENTITY_TYPE>".
        return [
            self.anonymizer.anonymize(text=text, analyzer_results=found).text
            for text, found in zip(texts, self.analyze(texts))
        ]

    def spans(self, texts: list[str]) -> list[list[Span]]:
        out = []
        for text, found in zip(texts, self.analyze(texts)):
            spans = []
            for r in found:
                entity = PRESIDIO_ENTITIES[r.entity_type]
                if entity == "IP":
                    entity = "IPV6" if ":" in text[r.start : r.end] else "IPV4"
                spans.append((entity, r.start, r.end))
            out.append(spans)
        return out


# ---------------------------------------------------------------------------------------------
# Quality


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def prf(self) -> tuple[float, float, float]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1


def score_spans(
    gold: Sequence[Sequence[Span]], found: Sequence[Sequence[Span]], overlap: bool
) -> dict[str, Score]:
    scores: dict[str, Score] = {}
    for gold_row, found_row in zip(gold, found):
        unmatched = list(gold_row)
        for entity, start, end in sorted(found_row, key=lambda s: (s[1], s[2], s[0])):
            score = scores.setdefault(entity, Score())
            hit = next(
                (
                    g
                    for g in unmatched
                    if g[0] == entity
                    and ((g[1] < end and start < g[2]) if overlap else (g[1], g[2]) == (start, end))
                ),
                None,
            )
            if hit is None:
                score.fp += 1
            else:
                score.tp += 1
                unmatched.remove(hit)
        for entity, _, _ in unmatched:
            scores.setdefault(entity, Score()).fn += 1
    return scores


def counts_from_spans(rows: Iterable[Sequence[Span]]) -> list[Counter[str]]:
    return [Counter("IP" if e in ("IPV4", "IPV6") else e for e, _, _ in row) for row in rows]


def score_counts(gold: Sequence[Counter[str]], found: Sequence[Counter[str]]) -> dict[str, Score]:
    scores: dict[str, Score] = {}
    for gold_row, found_row in zip(gold, found):
        for entity in set(gold_row) | set(found_row):
            score = scores.setdefault(entity, Score())
            g, f = gold_row[entity], found_row[entity]
            score.tp += min(g, f)
            score.fp += max(0, f - g)
            score.fn += max(0, g - f)
    return scores


def print_quality(
    title: str,
    gold_entities: list[str],
    tools: dict[str, dict[str, Score]],
    covers: dict[str, Optional[set[str]]],
) -> None:
    """One row per entity; "not covered" where a tool has no recognizer for it."""
    print(f"\n{title}")
    names = list(tools)
    print(f"  {'entity':<18} {'labels':>7}" + "".join(f" | {n:^25}" for n in names))
    print(f"  {'':<18} {'':>7}" + " | {:>7} {:>7} {:>7}".format("P", "R", "F1") * len(names))
    extra = sorted({e for scores in tools.values() for e in scores} - set(gold_entities))
    for entity in gold_entities + extra:
        labels = max(s[entity].tp + s[entity].fn for s in tools.values() if entity in s)
        cells = []
        for name in names:
            score, covered = tools[name].get(entity), covers[name]
            if covered is not None and entity not in covered:
                cells.append(f" | {'not covered':>23}  ")
            else:
                p, r, f1 = (score or Score()).prf()
                cells.append(f" | {p:>7.4f} {r:>7.4f} {f1:>7.4f}")
        print(f"  {entity:<18} {labels:>7}" + "".join(cells))


def maskops_counts(notes: list[str]) -> tuple[list[Counter[str]], Counter[str]]:
    """Per-note counts of the MaskOps families we label, and totals of every other family."""
    import maskops

    audit = pl.DataFrame({"note": notes}).select(maskops.mask_pii_audit("note")).to_series()
    counts = audit.struct.field("counts")
    per_family = {name: counts.struct.field(name).to_list() for name in counts.struct.fields}
    rows: list[Counter[str]] = [Counter() for _ in notes]
    other: Counter[str] = Counter()
    for family, values in per_family.items():
        entity = MASKOPS_FAMILIES.get(family)
        for i, n in enumerate(values):
            if not n:
                continue
            if entity is None:
                other[family] += n
            else:
                rows[i][entity] += n
    return rows, other


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--presidio-rows", type=int, default=20_000)
    parser.add_argument("--quality-rows", type=int, default=20_000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="timing rounds; each run's best time is kept"
    )
    args = parser.parse_args()
    cpus = cpu_count()

    print(
        f"amlguard {ag.__version__}, polars {pl.__version__}, pyarrow {pa.__version__},"
        f" {cpus} CPUs, polars pool {pl.thread_pool_size()} threads"
    )
    notes = ag.datasets.synthetic_pii(args.rows, seed=1).select(["note"])
    note_column = notes.column("note")
    megabytes = pc.sum(pc.binary_length(note_column)).as_py() / 1e6
    notes_polars = pl.Series("note", note_column)
    speed = SpeedTable(args.rows, megabytes)

    tmp = tempfile.TemporaryDirectory()
    presidio: Optional[Presidio] = None
    presidio_error: Optional[str] = None
    try:
        presidio = Presidio(os.path.join(tmp.name, "en_blank"))
        print(f"Presidio recognizers: {', '.join(presidio.recognizers)}")
    except Exception as err:  # report why the peer is missing, measure the rest
        presidio_error = f"{type(err).__name__}: {err}"
        print(f"Presidio unavailable: {presidio_error}")
    try:
        import maskops  # noqa: F401

        maskops_error: Optional[str] = None
    except ImportError as err:
        maskops_error = str(err)
        print(f"MaskOps unavailable: {maskops_error}")

    print("\nTiming ...")
    five, every = redact_policy(FIVE_ENTITIES), redact_policy(None)
    # (name, threads, run): amlguard on all CPUs and on one, then the peers.
    runs: list[tuple[str, int, Callable[[], Any]]] = []
    for threads in (cpus, 1):
        runs += [
            (
                f"amlguard redact_entities, every entity, threads={threads}",
                threads,
                functools.partial(every.apply, notes, threads=threads),
            ),
            (
                f"amlguard redact_entities, 5 entities, threads={threads}",
                threads,
                functools.partial(five.apply, notes, threads=threads),
            ),
            (
                f"amlguard detect, every entity, threads={threads}",
                threads,
                functools.partial(ag.detect, note_column, threads=threads),
            ),
        ]
    runs += [
        (
            "polars str.replace_all chain (5 patterns)",
            pl.thread_pool_size(),
            lambda: polars_chain(notes_polars),
        ),
        ("pyarrow replace_substring_regex chain (5)", 1, lambda: pyarrow_chain(note_column)),
    ]
    if maskops_error is None:
        runs += [
            (
                "MaskOps mask_pii, the 5 entities",
                pl.thread_pool_size(),
                lambda: maskops_mask(notes_polars, MASKOPS_FIVE),
            ),
            (
                "MaskOps mask_pii, all patterns",
                pl.thread_pool_size(),
                lambda: maskops_mask(notes_polars, None),
            ),
        ]
    best = best_of_rounds([(name, run) for name, _, run in runs], args.rounds)
    for name, threads, _ in runs:
        speed.add(name, threads, best[name])
    if presidio is not None:
        sample = note_column.slice(0, args.presidio_rows).to_pylist()
        engine = presidio
        speed.add(
            "Presidio analyze + anonymize (8 entities)",
            1,
            best_of(lambda: engine.redact(sample), repeat=1),
            rows=len(sample),
        )
    speed.print(reference=f"amlguard redact_entities, every entity, threads={cpus}")
    print_text_without_pii(every, args.rows)

    # --- Quality ----------------------------------------------------------------------------
    labelled = ag.datasets.labelled_notes(args.quality_rows, seed=42)
    texts: list[str] = labelled.column("note").to_pylist()
    gold: list[list[Span]] = [
        [(s["entity"], s["start"], s["end"]) for s in spans]
        for spans in labelled.column("spans").to_pylist()
    ]
    gold_entities = sorted({e for row in gold for e, _, _ in row})
    print(
        "\nNote: labelled_notes comes from amlguard's own generator, written with its"
        " recognizers;\nformats it does not produce are not measured here."
    )

    found_ag: list[list[Span]] = [[] for _ in texts]
    for r in ag.detect(labelled.column("note")).to_pylist():
        found_ag[r["row"]].append((r["entity"], r["start"], r["end"]))
    span_tools = {"amlguard": found_ag}
    # Entities each tool has a recognizer for (None: every labelled entity).
    presidio_covers = set(PRESIDIO_ENTITIES.values()) | {"IPV4", "IPV6"}
    covers: dict[str, Optional[set[str]]] = {"amlguard": None, "Presidio": presidio_covers}
    covers["MaskOps (all patterns)"] = set(MASKOPS_FAMILIES.values())
    if presidio is not None:
        span_tools["Presidio"] = presidio.spans(texts)
    for title, overlap in (("exact (entity, start, end)", False), ("overlap", True)):
        print_quality(
            f"Quality on labelled_notes({args.quality_rows:,}, seed=42), {title} match:",
            gold_entities,
            {name: score_spans(gold, found, overlap) for name, found in span_tools.items()},
            covers,
        )

    gold_counts = counts_from_spans(gold)
    count_tools = {
        name: score_counts(gold_counts, counts_from_spans(found))
        for name, found in span_tools.items()
    }
    other: Counter[str] = Counter()
    if maskops_error is None:
        maskops_rows, other = maskops_counts(texts)
        count_tools["MaskOps (all patterns)"] = score_counts(gold_counts, maskops_rows)
    print_quality(
        "Quality, per-note count match (IPV4+IPV6 as IP; MaskOps families"
        f" {', '.join(MASKOPS_FAMILIES)}):",
        sorted({e for row in gold_counts for e in row}),
        count_tools,
        covers,
    )
    if other:
        print(f"  MaskOps hits in its other families (no labelled value is one): {dict(other)}")
    if presidio_error is not None:
        print(f"\nPresidio was not measured: {presidio_error}")
    if maskops_error is not None:
        print(f"\nMaskOps was not measured: {maskops_error}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
