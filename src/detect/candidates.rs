//! Where the built-in recognizers' candidates are found, faster than one unanchored search of
//! the combined automaton.
//!
//! The combined leftmost-first automaton restarts at every candidate, and each restart costs a
//! forward and a reverse pass; on PII-dense text that is most of the work. For the built-in
//! recognizers only, [`CandidateFinder`] splits the patterns in two:
//!
//! - Patterns whose first two bytes are rare (digits, `+`, `(`, `-----`, keywords, capitals at a
//!   word start) go into one fully compiled, anchored dense DFA. A 64 KiB table gives, per byte
//!   pair, the look-behind start states under which a match can start there; every other
//!   position is skipped with one lookup, and an anchored walk at the remaining ones gives the
//!   match end directly, with no reverse pass (over a copy of the DFA laid out so that each
//!   step is one load, `walk.rs`). Where the CPU has AVX2, a vector pass over the
//!   text (`start_filter.rs`) first rules out most positions 32 at a time, so only its
//!   survivors get the lookup.
//! - Patterns that can start almost anywhere but hold a rare inner byte (EMAIL's `@`, IPV6's
//!   `:`, the SAS token's `=`) keep a `meta::Regex` each, run only where that byte occurs.
//!   EMAIL, a run of one character class then a suffix from its `@`, is not searched with its
//!   regex at all: from each `@`, a backward scan over the run gives the leftmost start (no match
//!   can start earlier, and if one from there fails, every later start fails too, since all
//!   share the suffix), and an anchored walk of a small dense DFA of the suffix gives the end.
//!   A non-ASCII byte before the run (a Unicode letter may belong to it) sends that search to
//!   the regex.
//!
//! Merging the streams gives exactly the combined automaton's leftmost-first match: the
//! leftmost start among them, and at equal starts the pattern first in priority order (each
//! stream already returns its own highest-priority match at its leftmost start). A test checks
//! the equivalence against the combined search on labelled notes and adversarial text.

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::meta::{self, Regex};
use regex_automata::util::{primitives::StateID, start};
use regex_automata::{Anchored, Input};

use super::start_filter::StartFilter;
use super::walk::{WalkStart, WalkTable};

/// Largest dense DFA accepted; beyond it the detector keeps the combined search alone.
const DENSE_SIZE_LIMIT_BYTES: usize = 16 << 20;
/// Bytes the anchored walks may cover per byte of text (plus [`WALK_BUDGET_MIN_BYTES`]).
/// Walks from many starts can overlap (say, many `-----BEGIN` headers with no end line), so
/// past this budget the caller finishes the text with the combined search, which is linear
/// whatever the text.
const WALK_BUDGET_PER_BYTE: usize = 8;
const WALK_BUDGET_MIN_BYTES: usize = 4096;

/// The walks of one text used up their budget: search the rest with the combined automaton.
#[derive(Debug)]
pub(crate) struct OverBudget;

/// A candidate: pattern (global priority index) at `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub start: usize,
    pub end: usize,
    pub pattern: usize,
}

/// A pattern that keeps its own regex, searched for its inner byte.
struct InnerPattern {
    regex: Regex,
    pattern: usize,
    /// A byte every match holds: where it does not occur, the regex is not run.
    required: u8,
    /// For a pattern `C+S` where `S` starts with `required`: searched without the regex.
    split: Option<RunThenSuffix>,
}

/// An inner pattern to keep apart from the dense DFA.
pub(crate) struct InnerSpec<'a> {
    /// Its index in priority order.
    pub pattern: usize,
    /// A byte every match holds.
    pub required: u8,
    /// `(C, S)` when the pattern is exactly `C+S`, `C` one character class that does not hold
    /// `required` and `S` a pattern starting with the byte `required`.
    pub run_then_suffix: Option<(&'a str, &'a str)>,
}

/// The search of a `C+S` pattern from each occurrence of its required byte.
struct RunThenSuffix {
    /// The ASCII bytes in `C` (bytes from 0x80 on are decided by the regex).
    run_ascii: [bool; 128],
    /// `S`, anchored; its start state does not depend on the byte before.
    suffix: WalkTable,
    suffix_start: WalkStart,
}

impl RunThenSuffix {
    fn new(run_char: &str, suffix: &str, required: u8) -> Option<Self> {
        let class = Regex::new(&format!(r"\A{run_char}\z")).ok()?;
        let mut run_ascii = [false; 128];
        for (byte, slot) in (0u8..128).zip(run_ascii.iter_mut()) {
            *slot = class.is_match(char::from(byte).encode_utf8(&mut [0; 4]) as &str);
        }
        if run_ascii[usize::from(required)] || !suffix.as_bytes().starts_with(&[required]) {
            return None;
        }
        let suffix = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(DENSE_SIZE_LIMIT_BYTES)),
            )
            .build(suffix)
            .ok()?;
        let suffix_start = anchored_start(&suffix, None)?;
        if (0..=255u8).any(|b| anchored_start(&suffix, Some(b)) != Some(suffix_start)) {
            return None;
        }
        let (suffix, suffix_start) = WalkTable::new(&suffix, &[suffix_start])?;
        let suffix_start = suffix_start[0];
        Some(Self {
            run_ascii,
            suffix,
            suffix_start,
        })
    }

    /// The leftmost match starting at or after `at`, or `Err(())` when a non-ASCII byte may
    /// extend a run (the caller then asks the regex).
    fn find(&self, bytes: &[u8], at: usize, required: u8) -> Result<Option<(usize, usize)>, ()> {
        let mut from = at;
        while let Some(found) = memchr::memchr(required, &bytes[from..]) {
            let inner = from + found;
            let mut start = inner;
            while start > at && self.run_ascii.get(usize::from(bytes[start - 1])) == Some(&true) {
                start -= 1;
            }
            if start > at && !bytes[start - 1].is_ascii() {
                return Err(());
            }
            if start < inner {
                let (found, _) = self.suffix.walk(bytes, inner, self.suffix_start);
                if let Some((_, end)) = found {
                    return Ok(Some((start, end)));
                }
            }
            from = inner + 1;
        }
        Ok(None)
    }
}

pub(crate) struct CandidateFinder {
    dense: WalkTable,
    /// Global pattern index of each dense pattern.
    dense_patterns: Vec<usize>,
    /// The anchored start states, one per distinct look-behind.
    starts: Vec<WalkStart>,
    /// Index into `starts` for each look-behind byte.
    start_of: [u8; 256],
    /// `1 << start_of[byte]`.
    start_bit: [u8; 256],
    start_of_text: u8,
    /// `[first byte << 8 | second byte]`: the set (bit `s` for `starts[s]`) of start states
    /// from which the DFA still lives after these two bytes. One load per position, with the
    /// look-behind's bit, decides whether a walk can start there.
    pair_alive: Box<[u8; 1 << 16]>,
    /// `[first byte]`: the same for a last byte of text.
    single_alive: [u8; 256],
    inner: Vec<InnerPattern>,
    /// Rules out most positions 32 at a time before the exact test (where the CPU allows).
    start_filter: Option<StartFilter>,
}

/// Per-text search state of a [`CandidateFinder`].
pub(crate) struct FinderScratch {
    caches: Vec<meta::Cache>,
    /// Per stream (dense first, then each inner pattern): the position searched from and the
    /// leftmost candidate found there, valid while the caller's position stays at or before it.
    memo: Vec<Option<(usize, Option<Candidate>)>>,
    /// Bytes the dense walks of this text may still cover.
    walk_budget: usize,
    /// The vector filter's verdicts over this text (see [`StartFilter::scan`]).
    passed: Vec<u32>,
}

impl CandidateFinder {
    /// Split `patterns` (priority order): indexes in `inner` keep their own regex, the rest go
    /// into the dense DFA. `None` when the dense DFA would be too large.
    pub(crate) fn new(patterns: &[&str], inner: &[InnerSpec<'_>]) -> Option<Self> {
        let dense_patterns: Vec<usize> = (0..patterns.len())
            .filter(|i| !inner.iter().any(|spec| spec.pattern == *i))
            .collect();
        let dense_sources: Vec<&str> = dense_patterns.iter().map(|&i| patterns[i]).collect();
        let dense = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(DENSE_SIZE_LIMIT_BYTES))
                    .determinize_size_limit(Some(DENSE_SIZE_LIMIT_BYTES)),
            )
            .build_many(&dense_sources)
            .ok()?;
        let inner = inner
            .iter()
            .map(|spec| {
                // Where the shape does not hold, the pattern keeps its regex search.
                let split = spec.run_then_suffix.and_then(|(run_char, suffix)| {
                    (patterns[spec.pattern] == format!("{run_char}+{suffix}"))
                        .then(|| RunThenSuffix::new(run_char, suffix, spec.required))
                        .flatten()
                });
                Some(InnerPattern {
                    regex: super::engine::compile_patterns(&[patterns[spec.pattern]]).ok()?,
                    pattern: spec.pattern,
                    required: spec.required,
                    split,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let mut starts: Vec<StateID> = Vec::new();
        let mut index_of = |state: StateID| -> u8 {
            let at = starts.iter().position(|s| *s == state).unwrap_or_else(|| {
                starts.push(state);
                starts.len() - 1
            });
            u8::try_from(at).expect("a DFA has a handful of start states")
        };
        let start_of_text = index_of(anchored_start(&dense, None)?);
        let mut start_of = [0u8; 256];
        for (byte, slot) in (0..=255u8).zip(start_of.iter_mut()) {
            *slot = index_of(anchored_start(&dense, Some(byte))?);
        }
        if starts.len() > 8 {
            return None;
        }
        let start_bit = start_of.map(|s| 1u8 << s);
        let mut pair_alive: Box<[u8; 1 << 16]> = vec![0u8; 1 << 16].try_into().ok()?;
        let mut single_alive = [0u8; 256];
        for (s, &state) in starts.iter().enumerate() {
            for first in 0..=255u8 {
                let after_first = dense.next_state(state, first);
                if dense.is_dead_state(after_first) {
                    continue;
                }
                single_alive[usize::from(first)] |= 1 << s;
                for second in 0..=255u8 {
                    if !dense.is_dead_state(dense.next_state(after_first, second)) {
                        pair_alive[usize::from(first) << 8 | usize::from(second)] |= 1 << s;
                    }
                }
            }
        }
        let needles: Vec<u8> = inner.iter().map(|p| p.required).collect();
        // The third bytes after which the DFA still lives, or any byte where it has matched.
        let thirds = |start: u8, first: u8, second: u8| {
            let after_first = dense.next_state(starts[usize::from(start)], first);
            let after_second = dense.next_state(after_first, second);
            if dense.is_match_state(after_first) || dense.is_match_state(after_second) {
                return [u64::MAX; 4];
            }
            let mut set = [0u64; 4];
            for third in 0..=255u8 {
                if !dense.is_dead_state(dense.next_state(after_second, third)) {
                    set[usize::from(third >> 6)] |= 1 << (third & 63);
                }
            }
            set
        };
        let start_filter = StartFilter::new(&start_of, &pair_alive, thirds, &needles);
        let (dense, starts) = WalkTable::new(&dense, &starts)?;
        Some(Self {
            dense,
            dense_patterns,
            starts,
            start_of,
            start_bit,
            start_of_text,
            pair_alive,
            single_alive,
            inner,
            start_filter,
        })
    }

    /// The positions of `text` the vector filter passes and those where a dense match can start
    /// as far as three bytes tell (both from position 1, with a second byte); `None` without
    /// the filter.
    #[cfg(test)]
    pub(crate) fn filter_and_exact_starts(&self, text: &str) -> Option<(Vec<usize>, Vec<usize>)> {
        let filter = self.start_filter.as_ref()?;
        let bytes = text.as_bytes();
        let mut passed = Vec::new();
        filter.scan(bytes, &mut passed);
        let positions = 1..bytes.len().saturating_sub(1);
        let by_filter = positions
            .clone()
            .filter(|&at| passed[(at - 1) / 32] & (1 << ((at - 1) % 32)) != 0)
            .collect();
        // Exact: the DFA lives (or has matched) after the next three bytes.
        let exact = positions
            .filter(|&at| {
                let Some(start) = self.may_start(bytes, at) else {
                    return false;
                };
                let (mut state, mut matched) = (self.starts[usize::from(start)].state(), false);
                for &byte in bytes[at..].iter().take(3) {
                    matched |= self.dense.is_match(state);
                    state = self.dense.next_state(state, byte);
                }
                matched || !self.dense.is_dead(state)
            })
            .collect();
        Some((by_filter, exact))
    }

    /// Test every position one by one, as where the CPU has no AVX2.
    #[cfg(test)]
    pub(crate) fn drop_start_filter(&mut self) {
        self.start_filter = None;
    }

    pub(crate) fn scratch(&self) -> FinderScratch {
        FinderScratch {
            caches: self.inner.iter().map(|p| p.regex.create_cache()).collect(),
            memo: vec![None; self.inner.len() + 1],
            walk_budget: 0,
            passed: Vec::new(),
        }
    }

    /// Start on a new text.
    pub(crate) fn reset(&self, text: &str, scratch: &mut FinderScratch) {
        scratch.memo.iter_mut().for_each(|m| *m = None);
        if let Some(filter) = &self.start_filter {
            let present = filter.scan(text.as_bytes(), &mut scratch.passed);
            // Most texts hold none of the inner patterns' bytes (no ':' or '=', no '@' in two
            // notes of three): their streams are settled here, with no search.
            for (k, memo) in scratch.memo[1..].iter_mut().enumerate() {
                if present & (1 << k) == 0 {
                    *memo = Some((0, None));
                }
            }
        }
        scratch.walk_budget = text
            .len()
            .saturating_mul(WALK_BUDGET_PER_BYTE)
            .saturating_add(WALK_BUDGET_MIN_BYTES);
    }

    /// The leftmost-first candidate starting at or after `at` (same text since the last
    /// [`CandidateFinder::reset`], `at` never moving backwards).
    #[inline(always)]
    pub(crate) fn next(
        &self,
        text: &str,
        at: usize,
        scratch: &mut FinderScratch,
    ) -> Result<Option<Candidate>, OverBudget> {
        let mut best: Option<Candidate> = None;
        for stream in 0..scratch.memo.len() {
            let found = match scratch.memo[stream] {
                Some((from, found)) if from <= at && found.is_none_or(|c| c.start >= at) => found,
                _ => {
                    let found = if stream == 0 {
                        self.next_dense(text, at, &scratch.passed, &mut scratch.walk_budget)?
                    } else {
                        self.next_inner(text, at, stream - 1, &mut scratch.caches[stream - 1])
                    };
                    scratch.memo[stream] = Some((at, found));
                    found
                }
            };
            if let Some(c) = found {
                if best.is_none_or(|b| (c.start, c.pattern) < (b.start, b.pattern)) {
                    best = Some(c);
                }
            }
        }
        Ok(best)
    }

    fn next_dense(
        &self,
        text: &str,
        at: usize,
        passed: &[u32],
        budget: &mut usize,
    ) -> Result<Option<Candidate>, OverBudget> {
        let bytes = text.as_bytes();
        if at >= bytes.len() {
            return Ok(None);
        }
        if self.start_filter.is_none() {
            return self.next_dense_one_by_one(bytes, at, budget);
        }
        // `at` (whose look-behind may be the start of the text) and the last position (no
        // second byte) are tested alone; those between, where the vector filter passed them.
        if let Some(start) = self.may_start(bytes, at) {
            if let Some(found) = self.walk_from(bytes, at, start, budget)? {
                return Ok(Some(found));
            }
        }
        // Word `w` of `passed` holds positions `1 + 32 w ..`: start from position `at + 1`.
        let mut word = at / 32;
        let mut bits = passed.get(word).map_or(0, |w| w & (u32::MAX << (at % 32)));
        loop {
            while bits != 0 {
                let position = 1 + 32 * word + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(start) = self.may_start(bytes, position) {
                    if let Some(found) = self.walk_from(bytes, position, start, budget)? {
                        return Ok(Some(found));
                    }
                }
            }
            word += 1;
            match passed.get(word) {
                Some(&next) => bits = next,
                None => break,
            }
        }
        let last = bytes.len() - 1;
        if at < last {
            if let Some(start) = self.may_start(bytes, last) {
                return self.walk_from(bytes, last, start, budget);
            }
        }
        Ok(None)
    }

    /// The exact test: the look-behind start state (index into `starts`) under which a dense
    /// match can start at `at`, if any.
    fn may_start(&self, bytes: &[u8], at: usize) -> Option<u8> {
        let start = self.start_at(bytes, at);
        let alive = match bytes.get(at + 1) {
            Some(&second) => self.pair_alive[usize::from(bytes[at]) << 8 | usize::from(second)],
            None => self.single_alive[usize::from(bytes[at])],
        };
        (alive & (1 << start) != 0).then_some(start)
    }

    /// The look-behind start state (index into `starts`) at `at`.
    fn start_at(&self, bytes: &[u8], at: usize) -> u8 {
        match at.checked_sub(1) {
            None => self.start_of_text,
            Some(before) => self.start_of[usize::from(bytes[before])],
        }
    }

    /// [`CandidateFinder::next_dense`] without the vector filter: every position tested.
    fn next_dense_one_by_one(
        &self,
        bytes: &[u8],
        at: usize,
        budget: &mut usize,
    ) -> Result<Option<Candidate>, OverBudget> {
        let mut start = self.start_at(bytes, at);
        let mut start_bit = 1u8 << start;
        let rest = &bytes[at..];
        let mut offset = 0;
        while offset + 1 < rest.len() {
            let (first, second) = (rest[offset], rest[offset + 1]);
            if self.pair_alive[usize::from(first) << 8 | usize::from(second)] & start_bit != 0 {
                if let Some(found) = self.walk_from(bytes, at + offset, start, budget)? {
                    return Ok(Some(found));
                }
            }
            start_bit = self.start_bit[usize::from(first)];
            start = self.start_of[usize::from(first)];
            offset += 1;
        }
        let last = bytes.len() - 1;
        if self.single_alive[usize::from(bytes[last])] & (1 << start) != 0 {
            return self.walk_from(bytes, last, start, budget);
        }
        Ok(None)
    }

    /// The dense candidate starting at `at` under the look-behind start state `start`.
    /// Inlined: out of line, its result came back through memory, written field by field and
    /// read back wider, and that load waited for the stores.
    #[inline(always)]
    fn walk_from(
        &self,
        bytes: &[u8],
        at: usize,
        start: u8,
        budget: &mut usize,
    ) -> Result<Option<Candidate>, OverBudget> {
        let state = self.starts[usize::from(start)];
        let (found, walked) = self.dense.walk(bytes, at, state);
        // Charged after the walk: one walk is at most the text's length, so the total stays
        // linear.
        *budget = budget.checked_sub(walked).ok_or(OverBudget)?;
        Ok(found.map(|(pattern, end)| Candidate {
            start: at,
            end,
            pattern: self.dense_patterns[pattern],
        }))
    }

    fn next_inner(
        &self,
        text: &str,
        at: usize,
        inner: usize,
        cache: &mut meta::Cache,
    ) -> Option<Candidate> {
        let pattern = &self.inner[inner];
        if let Some(split) = &pattern.split {
            if let Ok(found) = split.find(text.as_bytes(), at, pattern.required) {
                return found.map(|(start, end)| Candidate {
                    start,
                    end,
                    pattern: pattern.pattern,
                });
            }
        }
        // Most texts hold no ':' or '=' at all, and none has an '@' after its last e-mail:
        // one memchr is far cheaper than starting a regex search that finds nothing.
        memchr::memchr(pattern.required, &text.as_bytes()[at..])?;
        let input = Input::new(text).span(at..text.len());
        let m = pattern.regex.search_with(cache, &input)?;
        Some(Candidate {
            start: m.start(),
            end: m.end(),
            pattern: pattern.pattern,
        })
    }
}

/// The anchored start state of `dfa` after the byte `look_behind` (`None`: start of text).
fn anchored_start(dfa: &dense::DFA<Vec<u32>>, look_behind: Option<u8>) -> Option<StateID> {
    dfa.start_state(
        &start::Config::new()
            .anchored(Anchored::Yes)
            .look_behind(look_behind),
    )
    .ok()
}
