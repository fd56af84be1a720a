//! The detection engine: one pass per string over all recognizers at once.
//!
//! All patterns are compiled into one multi-pattern `regex_automata::meta::Regex`
//! (leftmost-first: at the leftmost position where any pattern matches, the earliest pattern in
//! priority order wins, and each match reports its pattern id). Each candidate goes to its
//! recognizer's validator; only candidates are validated, never whole texts. When a candidate is
//! rejected, the lower-priority patterns that match at the same position are tried (a
//! Luhn-invalid 10-digit "card" may still be a phone number), and scanning resumes after the
//! candidate's first token, so a greedy candidate that swallowed its neighbour does not hide it.
//! With the built-in recognizers only, candidates come from a faster split search that returns
//! exactly the combined automaton's matches (see `candidates.rs`).
//!
//! Contract:
//! - No backtracking: every search is linear in the text for any pattern, user patterns
//!   included, so a catastrophic pattern such as `(a+)+$` cannot blow up. Work after a
//!   rejected candidate is bounded too: alternates are searched within
//!   [`ALTERNATE_WINDOW_BYTES`] of it, and scanning resumes after its first token (or after
//!   the whole candidate when it is long). As with any leftmost-first match iteration (the
//!   `regex` crate's `find_iter` included), a user pattern whose end depends on text far ahead
//!   (`a(?:.*Z)?`) can make a value with very many matches cost more than one pass; the
//!   built-in patterns are bounded and do not.
//! - A cheap pre-filter runs first: with only built-in recognizers, a string with no digit, no
//!   `@ : / =`, no token of 16 or more key characters and no `www.` is skipped without any
//!   pattern work.
//! - A context word (a recognizer's `context`, at a word start, ignoring case, also outside
//!   ASCII: "TELÉFONO" for "teléfono") within [`CONTEXT_WINDOW_BYTES`] before a match, in the
//!   same sentence or clause, raises its score by [`CONTEXT_BOOST`]; findings scoring below the
//!   detector's minimum are dropped.
//! - Findings are byte ranges of the text, sorted by start and never overlapping. Where other
//!   sources add spans (an external NER), [`resolve_overlaps`] keeps, deterministically, the
//!   highest score, then the longest, then the earliest.
//!
//! ```
//! use amlguard::detect::Detector;
//! let detector = Detector::builtin().unwrap();
//! let text = "Write to zoë@example.com or call +1 201-555-0123.";
//! let found = detector.find(text);
//! let names: Vec<&str> = found.iter().map(|f| detector.entity_name(f.entity)).collect();
//! assert_eq!(names, ["EMAIL", "PHONE"]);
//! assert_eq!(&text[found[1].start..found[1].end], "+1 201-555-0123");
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use regex_automata::meta::{self, Regex};
use regex_automata::{Anchored, Input, MatchKind, PatternID, PatternSet};

use super::candidates::{Candidate, CandidateFinder, FinderScratch, InnerSpec, OverBudget};
use super::recognizers::{self, Recognizer};
use super::validators::Accepted;
use crate::error::{Error, Result};

/// How far before a match context words are looked for, in bytes.
pub const CONTEXT_WINDOW_BYTES: usize = 48;
/// Score added when a context word precedes a match.
pub const CONTEXT_BOOST: f64 = 0.35;
/// Findings below this score are dropped unless a detector is built with another minimum.
pub const DEFAULT_MIN_SCORE: f64 = 0.5;
/// How far past a rejected candidate's start lower-priority patterns are searched, in bytes.
pub const ALTERNATE_WINDOW_BYTES: usize = 256;
/// Rejected candidates up to this long are rescanned from their second token; longer ones are
/// skipped whole, which keeps rescanning bounded for any pattern.
const RETRY_CANDIDATE_BYTES: usize = 128;
/// Memory for the lazy DFA's state cache (per thread). The combined automaton of all
/// recognizers thrashes a smaller cache on mixed text and falls back to the slower NFA engines.
const DFA_CACHE_BYTES: usize = 64 << 20;
/// Largest compiled automaton accepted.
const NFA_SIZE_LIMIT_BYTES: usize = 32 << 20;

/// One finding: an entity at a byte range of the text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Finding {
    /// Index of the entity in [`Detector::entities`].
    pub entity: usize,
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// Confidence in `0..=1`.
    pub score: f64,
}

/// Per-thread search state; reuse one per worker to avoid allocations.
pub struct Scratch {
    cache: meta::Cache,
    /// State of the all-matches twin that finds which patterns match at a rejected candidate.
    every_match: meta::Cache,
    matching_here: PatternSet,
    finder: Option<FinderScratch>,
}

/// How exact findings' scores must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scores {
    /// Base or validator score, plus the context boost where a context word is near.
    Exact,
    /// Only known to reach the detector's minimum.
    AtLeastMinimum,
}

/// Compiled recognizers, ready to scan text. Cheap to share between threads (`Sync`).
pub struct Detector {
    regex: Regex,
    /// The same patterns under `MatchKind::All`: one anchored pass tells which of them match at
    /// a position, so a rejected candidate's alternatives are not tried pattern by pattern.
    every_match: Regex,
    recognizers: Vec<Recognizer>,
    /// Entity index of each recognizer (pattern).
    entity_of: Vec<usize>,
    entities: Vec<String>,
    /// Context words of each recognizer (pattern).
    context_of: Vec<ContextWords>,
    min_score: f64,
    prefilter: bool,
    /// With the built-in recognizers only: the faster split search for candidates.
    candidates: Option<CandidateFinder>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("entities", &self.entities)
            .field("min_score", &self.min_score)
            .finish_non_exhaustive()
    }
}

/// Compile patterns into one leftmost-first multi-pattern regex.
pub(crate) fn compile_patterns<P: AsRef<str>>(
    patterns: &[P],
) -> std::result::Result<Regex, Box<regex_automata::meta::BuildError>> {
    compile_patterns_as(patterns, MatchKind::LeftmostFirst)
}

fn compile_patterns_as<P: AsRef<str>>(
    patterns: &[P],
    kind: MatchKind,
) -> std::result::Result<Regex, Box<regex_automata::meta::BuildError>> {
    Regex::builder()
        .configure(
            Regex::config()
                .match_kind(kind)
                .nfa_size_limit(Some(NFA_SIZE_LIMIT_BYTES))
                .hybrid_cache_capacity(DFA_CACHE_BYTES),
        )
        .build_many(patterns)
        .map_err(Box::new)
}

impl Detector {
    /// A detector for these recognizers, in priority order.
    pub fn new(recognizers: Vec<Recognizer>) -> Result<Self> {
        let patterns: Vec<&str> = recognizers.iter().map(|r| r.pattern.as_str()).collect();
        // Each custom pattern compiled alone when it was made, so what fails here is the
        // combination (its size): name the recognizers involved.
        let together = |e: Box<regex_automata::meta::BuildError>| Error::Recognizer {
            name: recognizers
                .iter()
                .filter(|r| !r.builtin)
                .map(|r| r.entity.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            message: format!("the recognizers do not compile together: {e}"),
        };
        let regex = compile_patterns(&patterns).map_err(together)?;
        let every_match = compile_patterns_as(&patterns, MatchKind::All).map_err(together)?;
        let mut entities: Vec<String> = Vec::new();
        let entity_of = recognizers
            .iter()
            .map(|r| match entities.iter().position(|e| *e == r.entity) {
                Some(i) => i,
                None => {
                    entities.push(r.entity.clone());
                    entities.len() - 1
                }
            })
            .collect();
        let context_of = recognizers
            .iter()
            .map(|r| ContextWords::new(&r.context))
            .collect();
        let prefilter = recognizers.iter().all(|r| r.builtin);
        // Patterns that start almost anywhere but hold a rare inner byte (which every match
        // holds) keep their own search.
        let inner: Vec<InnerSpec<'_>> = recognizers
            .iter()
            .enumerate()
            .filter_map(|(pattern, r)| {
                let (required, run_then_suffix) = match r.entity.as_str() {
                    recognizers::EMAIL => (
                        b'@',
                        Some((recognizers::EMAIL_LOCAL_CHAR, recognizers::EMAIL_FROM_AT)),
                    ),
                    recognizers::IPV6 => (b':', None),
                    recognizers::AZURE_SAS_TOKEN => (b'=', None),
                    _ => return None,
                };
                Some(InnerSpec {
                    pattern,
                    required,
                    run_then_suffix,
                })
            })
            .collect();
        let candidates = if prefilter {
            CandidateFinder::new(&patterns, &inner)
        } else {
            None
        };
        Ok(Self {
            regex,
            every_match,
            recognizers,
            entity_of,
            entities,
            context_of,
            min_score: DEFAULT_MIN_SCORE,
            prefilter,
            candidates,
        })
    }

    /// The built-in recognizers.
    pub fn builtin() -> Result<Self> {
        Self::new(recognizers::builtin())
    }

    /// The built-in detector, compiled once per process and shared (policies reuse it).
    pub fn builtin_shared() -> Result<Arc<Self>> {
        static BUILTIN: OnceLock<Arc<Detector>> = OnceLock::new();
        if let Some(detector) = BUILTIN.get() {
            return Ok(Arc::clone(detector));
        }
        let detector = Arc::new(Self::builtin()?);
        Ok(Arc::clone(BUILTIN.get_or_init(|| detector)))
    }

    /// User recognizers first (they win ties at the same position), then the built-ins.
    pub fn with_custom(custom: Vec<Recognizer>) -> Result<Self> {
        let mut all = custom;
        all.extend(recognizers::builtin());
        Self::new(all)
    }

    /// Drop findings scoring below `min_score` (default [`DEFAULT_MIN_SCORE`]).
    pub fn with_min_score(mut self, min_score: f64) -> Result<Self> {
        if !(min_score.is_finite() && (0.0..=1.0).contains(&min_score)) {
            return Err(Error::policy("min_score must be between 0 and 1"));
        }
        self.min_score = min_score;
        Ok(self)
    }

    /// Entity names, indexed by [`Finding::entity`], in first-seen priority order.
    pub fn entities(&self) -> &[String] {
        &self.entities
    }

    /// Name of entity `index` (empty if out of range).
    pub fn entity_name(&self, index: usize) -> &str {
        self.entities.get(index).map_or("", String::as_str)
    }

    /// Index of an entity by name.
    pub fn entity_index(&self, name: &str) -> Option<usize> {
        self.entities.iter().position(|e| e == name)
    }

    /// Fresh per-thread search state.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            cache: self.regex.create_cache(),
            every_match: self.every_match.create_cache(),
            matching_here: PatternSet::new(self.regex.pattern_len()),
            finder: self.candidates.as_ref().map(CandidateFinder::scratch),
        }
    }

    /// All findings in `text` (allocates; use [`Detector::find_into`] in loops).
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.find_into(text, &mut self.scratch(), &mut out);
        out
    }

    /// Replace `out` with the findings in `text`, sorted by start, non-overlapping.
    pub fn find_into(&self, text: &str, scratch: &mut Scratch, out: &mut Vec<Finding>) {
        self.find_scored(text, scratch, out, Scores::Exact);
    }

    /// The same findings as [`Detector::find_into`] (same spans, same entities), for callers
    /// that only need to know a finding reaches the detector's minimum score (redaction,
    /// counting): context words are looked for only where they decide whether a match is kept,
    /// so a score may be below the one [`Detector::find_into`] reports, never below the minimum.
    pub fn spans_into(&self, text: &str, scratch: &mut Scratch, out: &mut Vec<Finding>) {
        self.find_scored(text, scratch, out, Scores::AtLeastMinimum);
    }

    fn find_scored(
        &self,
        text: &str,
        scratch: &mut Scratch,
        out: &mut Vec<Finding>,
        scores: Scores,
    ) {
        out.clear();
        if text.is_empty() || (self.prefilter && !worth_scanning(text.as_bytes())) {
            return;
        }
        let len = text.len();
        let mut split = match (&self.candidates, &mut scratch.finder) {
            (Some(finder), Some(state)) => {
                finder.reset(text, state);
                true
            }
            _ => false,
        };
        let mut at = 0;
        while at < len {
            let Some(Candidate {
                start,
                end,
                pattern,
            }) = self.next_candidate(text, at, scratch, &mut split)
            else {
                break;
            };
            if start == end {
                at = next_char(text, start);
                continue;
            }
            let found_end = self
                .confirm_into(text, start, end, pattern, &mut scratch.cache, scores, out)
                .or_else(|| self.alternate_into(text, start, pattern, scratch, scores, out));
            match found_end {
                Some(found_end) => at = found_end.max(next_char(text, start)),
                None if end - start <= RETRY_CANDIDATE_BYTES => at = first_token_end(text, start),
                None => at = end,
            }
        }
    }

    /// The leftmost-first match of all patterns starting at or after `at`: from the split
    /// search while `split` holds, else (and for the rest of the text once the split search
    /// ran over its budget) from the combined automaton.
    fn next_candidate(
        &self,
        text: &str,
        at: usize,
        scratch: &mut Scratch,
        split: &mut bool,
    ) -> Option<Candidate> {
        if *split {
            if let (Some(finder), Some(state)) = (&self.candidates, &mut scratch.finder) {
                match finder.next(text, at, state) {
                    Ok(found) => return found,
                    Err(OverBudget) => *split = false,
                }
            }
        }
        let input = Input::new(text).span(at..text.len());
        let m = self.regex.search_with(&mut scratch.cache, &input)?;
        Some(Candidate {
            start: m.start(),
            end: m.end(),
            pattern: m.pattern().as_usize(),
        })
    }

    /// Validate and score the candidate `text[start..end]` of `pattern`; a finding goes to
    /// `out` and its end is returned. Pushed here, where its fields sit in registers: returned
    /// as an `Option<Finding>` it went through the stack, written field by field and read
    /// back wider, a load stalled behind its stores (~1.5 % of time samples on PII-dense text).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn confirm_into(
        &self,
        text: &str,
        start: usize,
        end: usize,
        pattern: usize,
        cache: &mut meta::Cache,
        scores: Scores,
        out: &mut Vec<Finding>,
    ) -> Option<usize> {
        let recognizer = self.recognizers.get(pattern)?;
        let accepted = match recognizer.validator {
            None => Accepted {
                start,
                end,
                score: None,
            },
            Some(validator) => validator.check(text, start, end)?,
        };
        if accepted.start >= accepted.end {
            return None;
        }
        if recognizer.defers {
            if let Some(end) = self.specific_into(text, accepted, pattern, cache, scores, out) {
                return Some(end);
            }
        }
        let mut score = accepted.score.unwrap_or(recognizer.score);
        let context_decides = scores == Scores::Exact || score < self.min_score;
        if context_decides && has_context(text, accepted.start, &self.context_of[pattern]) {
            score = (score + CONTEXT_BOOST).min(1.0);
        }
        if score < self.min_score {
            return None;
        }
        out.push(Finding {
            entity: self.entity_of[pattern],
            start: accepted.start,
            end: accepted.end,
            score,
        });
        Some(accepted.end)
    }

    /// A more specific recognizer matching exactly where a generic one's value starts: its
    /// finding goes to `out`, its end is returned. (Out of line: it calls `confirm_into`,
    /// which is inlined everywhere, and runs only for deferring recognizers.)
    #[inline(never)]
    fn specific_into(
        &self,
        text: &str,
        accepted: Accepted,
        generic: usize,
        cache: &mut meta::Cache,
        scores: Scores,
        out: &mut Vec<Finding>,
    ) -> Option<usize> {
        let input = Input::new(text)
            .span(accepted.start..text.len())
            .anchored(Anchored::Yes);
        let m = self.regex.search_with(cache, &input)?;
        let pattern = m.pattern().as_usize();
        if pattern == generic || self.recognizers.get(pattern)?.defers {
            return None;
        }
        self.confirm_into(text, m.start(), m.end(), pattern, cache, scores, out)
    }

    /// After `pattern`'s candidate at `start` was rejected: the first lower-priority pattern
    /// that matches at `start` and validates (its finding goes to `out`, its end is returned).
    /// Out of line: it runs only after a rejection, and keeps the scan loop small.
    #[inline(never)]
    fn alternate_into(
        &self,
        text: &str,
        start: usize,
        pattern: usize,
        scratch: &mut Scratch,
        scores: Scores,
        out: &mut Vec<Finding>,
    ) -> Option<usize> {
        // The last pattern in priority order (the built-in PHONE, which every rejected number
        // reaches) has no alternate: skip the overlapping search.
        if pattern + 1 >= self.recognizers.len() {
            return None;
        }
        let window_end = floor_char_boundary(text, start.saturating_add(ALTERNATE_WINDOW_BYTES));
        let window = Input::new(text)
            .span(start..window_end)
            .anchored(Anchored::Yes);
        scratch.matching_here.clear();
        self.every_match.which_overlapping_matches_with(
            &mut scratch.every_match,
            &window,
            &mut scratch.matching_here,
        );
        (pattern + 1..self.recognizers.len()).find_map(|other| {
            let id = PatternID::new(other).ok()?;
            if !scratch.matching_here.contains(id) {
                return None;
            }
            let input = Input::new(text)
                .span(start..window_end)
                .anchored(Anchored::Pattern(id));
            let m = self.regex.search_with(&mut scratch.cache, &input)?;
            if m.start() == m.end() {
                return None;
            }
            self.confirm_into(
                text,
                m.start(),
                m.end(),
                other,
                &mut scratch.cache,
                scores,
                out,
            )
        })
    }
}

/// Bytes that make a string worth scanning for the built-in recognizers: digits, '@', ':', '/'
/// and '='. ('/', the digits and ':' are one range.)
fn is_trigger(b: u8) -> bool {
    b.wrapping_sub(b'/') <= b':' - b'/' || b == b'=' || b == b'@'
}

/// Characters of a key-like token (JWT parts, AWS ids, PEM bodies, API keys).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~' | b'+')
}

/// The pre-filter: could any built-in recognizer match this text?
pub(crate) fn worth_scanning(bytes: &[u8]) -> bool {
    // 32 bytes at a time with no branch inside: the compiler turns the fold into vector
    // compares, several times faster than a byte loop that stops at the first trigger.
    let mut blocks = bytes.chunks_exact(32);
    if blocks
        .by_ref()
        .any(|block| block.iter().fold(false, |any, &b| any | is_trigger(b)))
        || blocks.remainder().iter().any(|&b| is_trigger(b))
    {
        return true;
    }
    has_key_run_or_www(bytes)
}

/// A run of 16 or more key characters, or "www." in any case (the URL pattern ignores case).
/// Bitmasks of 64-byte windows 48 bytes apart, so that every 16-byte run lies whole in one
/// window: no branch per byte (clean text has a word boundary every few bytes, and a
/// mispredicted branch at each one cost more than the rest of the filter).
fn has_key_run_or_www(bytes: &[u8]) -> bool {
    let mut at = 0;
    loop {
        let masks = WindowMasks::of(&bytes[at..bytes.len().min(at + 64)]);
        // Bit `i` of `run` ends up set when bits `i..i + 16` of `key` are all set.
        let mut run = masks.key;
        run &= run >> 1;
        run &= run >> 2;
        run &= run >> 4;
        run &= run >> 8;
        let www = masks.w & masks.w >> 1 & masks.w >> 2 & masks.dot >> 3;
        if run != 0 || www != 0 {
            return true;
        }
        if at + 64 >= bytes.len() {
            return false;
        }
        at += 48;
    }
}

/// Per byte of a window of at most 64 bytes (bit `i` for byte `i`): key characters, 'w' or
/// 'W', and '.'.
#[derive(Debug, PartialEq, Eq)]
struct WindowMasks {
    key: u64,
    w: u64,
    dot: u64,
}

impl WindowMasks {
    fn of(window: &[u8]) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            // Full windows are read in place; only the last, short one is copied and padded.
            let full: Option<&[u8; 64]> = window.try_into().ok();
            let mut padded = [0u8; 64];
            let window = full.unwrap_or_else(|| {
                padded[..window.len()].copy_from_slice(window);
                &padded
            });
            // SAFETY: SSE2 is part of x86-64: every CPU this code runs on has it.
            unsafe { Self::of_sse2(window) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self::of_bytes(window)
    }

    /// Byte by byte: the reference for the vector version.
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    fn of_bytes(window: &[u8]) -> Self {
        window.iter().enumerate().fold(
            Self {
                key: 0,
                w: 0,
                dot: 0,
            },
            |masks, (i, &b)| Self {
                key: masks.key | u64::from(is_token_byte(b)) << i,
                w: masks.w | u64::from(b | 0x20 == b'w') << i,
                dot: masks.dot | u64::from(b == b'.') << i,
            },
        )
    }

    /// 16 bytes per step with vector compares (zero bytes, the padding, are in no mask).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse2")]
    fn of_sse2(window: &[u8; 64]) -> Self {
        use std::arch::x86_64::*;
        // Bytes `low..=high` (unsigned): `x - low` is at most `high - low`.
        let in_range = |x: __m128i, low: u8, high: u8| {
            let offset = _mm_sub_epi8(x, _mm_set1_epi8(low as i8));
            _mm_cmpeq_epi8(
                _mm_min_epu8(offset, _mm_set1_epi8((high - low) as i8)),
                offset,
            )
        };
        let byte = |x: __m128i, b: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(b as i8));
        let mut masks = Self {
            key: 0,
            w: 0,
            dot: 0,
        };
        for (i, chunk) in window.chunks_exact(16).enumerate() {
            // SAFETY: `chunk` is 16 readable bytes.
            let x = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
            // ASCII letters are exactly the bytes that land in 'a'..='z' with bit 5 set.
            let lower = _mm_or_si128(x, _mm_set1_epi8(0x20));
            let dot = byte(x, b'.');
            let key = _mm_or_si128(
                _mm_or_si128(in_range(lower, b'a', b'z'), in_range(x, b'0', b'9')),
                _mm_or_si128(
                    _mm_or_si128(byte(x, b'_'), byte(x, b'-')),
                    _mm_or_si128(_mm_or_si128(dot, byte(x, b'~')), byte(x, b'+')),
                ),
            );
            let bits = |v: __m128i| u64::from(_mm_movemask_epi8(v) as u16) << (16 * i);
            masks.key |= bits(key);
            masks.w |= bits(byte(lower, b'w'));
            masks.dot |= bits(dot);
        }
        masks
    }
}

/// A recognizer's context words (case-folded) and the set of their first bytes: most word
/// starts before a match begin with a byte no context word begins with, and cost one bit test.
#[derive(Clone, Debug, Default)]
struct ContextWords {
    words: Vec<ContextWord>,
    first_bytes: [u64; 4],
}

#[derive(Clone, Debug)]
struct ContextWord {
    folded: Box<str>,
    ascii: bool,
}

/// A character's case-folded form: its lower case, with the final sigma as a sigma (a word
/// lowercased as a whole ends in 'ς', the same word's capitals one by one give 'σ').
fn fold_case(c: char) -> impl Iterator<Item = char> {
    c.to_lowercase().map(|l| if l == 'ς' { 'σ' } else { l })
}

/// Whether `text`, case-folded, starts with `folded` (a case-folded word).
fn starts_with_folded(text: &str, folded: &str) -> bool {
    let mut text = text.chars().flat_map(fold_case);
    folded.chars().all(|c| text.next() == Some(c))
}

impl ContextWords {
    fn new(words: &[String]) -> Self {
        let words: Vec<ContextWord> = words
            .iter()
            .filter(|word| !word.is_empty())
            .map(|word| {
                let folded: String = word.chars().flat_map(fold_case).collect();
                ContextWord {
                    ascii: folded.is_ascii(),
                    folded: folded.into(),
                }
            })
            .collect();
        let mut first_bytes = [0u64; 4];
        for word in &words {
            let first = word.folded.as_bytes()[0];
            first_bytes[usize::from(first >> 6)] |= 1 << (first & 63);
        }
        if !words.is_empty() {
            // A character outside ASCII may fold to any word's first character (the Kelvin
            // sign to 'k', 'Ñ' to 'ñ'): each such character's first byte is a possible start.
            first_bytes[3] |= u64::MAX;
        }
        Self { words, first_bytes }
    }

    fn some_word_starts_with(&self, byte: u8) -> bool {
        self.first_bytes[usize::from(byte >> 6)] >> (byte & 63) & 1 == 1
    }

    /// Whether some word starts `text` (the window from a word start to the match), ignoring
    /// case. ASCII words against ASCII text compare bytes in place; otherwise characters are
    /// case-folded one by one.
    fn some_word_starts(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        // The first character's folded first byte when ASCII: ASCII words are compared only
        // where it is theirs (of the characters outside ASCII, only the Kelvin sign and the
        // dotted capital I fold to ASCII first).
        let first = if bytes[0].is_ascii() {
            Some(bytes[0].to_ascii_lowercase())
        } else {
            text.chars()
                .next()
                .and_then(|c| fold_case(c).next())
                .and_then(|c| u8::try_from(c).ok())
                .filter(u8::is_ascii)
        };
        self.words.iter().any(|word| {
            let folded = word.folded.as_bytes();
            if !word.ascii {
                return starts_with_folded(text, &word.folded);
            }
            if first != Some(folded[0]) {
                return false;
            }
            match bytes.get(..folded.len()) {
                Some(head) if head.is_ascii() => head.eq_ignore_ascii_case(folded),
                None if bytes.is_ascii() => false,
                _ => starts_with_folded(text, &word.folded),
            }
        })
    }
}

// Byte classes for `has_context`, all of a byte's from one table load.
/// An ASCII letter or digit.
const ALNUM: u8 = 1;
/// `.`, `!` or `?`: ends a sentence when a space or a line break follows.
const SENTENCE_END: u8 = 2;
/// `;` or a line break: ends a clause when anything follows.
const CLAUSE_END: u8 = 4;
/// A space or a line break.
const GAP: u8 = 8;

static CONTEXT_BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = if b.is_ascii_alphanumeric() { ALNUM } else { 0 }
            | if matches!(b, b'.' | b'!' | b'?') {
                SENTENCE_END
            } else {
                0
            }
            | if matches!(b, b';' | b'\n') {
                CLAUSE_END
            } else {
                0
            }
            | if matches!(b, b' ' | b'\n') { GAP } else { 0 };
        byte += 1;
    }
    table
};

fn has_context(text: &str, start: usize, context: &ContextWords) -> bool {
    if context.words.is_empty() {
        return false;
    }
    let from = ceil_char_boundary(text, start.saturating_sub(CONTEXT_WINDOW_BYTES));
    let source = &text.as_bytes()[from..start];
    let class = |at: usize| {
        source
            .get(at)
            .map_or(0, |&b| CONTEXT_BYTE_CLASS[usize::from(b)])
    };
    // From the match backwards, so the nearest word ends the search; the search also ends
    // where the sentence or clause does: "SSN: 123456789. Order 987654321" does not make the
    // order number an SSN. Words are compared in place, ignoring case: windows are tiny, so
    // this beats a case-folded copy or a substring searcher per word.
    for (i, &byte) in source.iter().enumerate().rev() {
        let here = class(i);
        let ends_clause = here & CLAUSE_END != 0 && i + 1 < source.len()
            || here & SENTENCE_END != 0 && class(i + 1) & GAP != 0;
        if ends_clause {
            return false;
        }
        let word_start = i == 0 || class(i - 1) & ALNUM == 0;
        // Continuation bytes are never in the first-byte set, so `from + i` is a character
        // boundary below.
        if word_start
            && context.some_word_starts_with(byte.to_ascii_lowercase())
            && context.some_word_starts(&text[from + i..start])
        {
            return true;
        }
    }
    false
}

fn next_char(text: &str, at: usize) -> usize {
    text[at..]
        .chars()
        .next()
        .map_or(text.len(), |c| at + c.len_utf8())
}

/// End of the ASCII-alphanumeric run at `at` (at least one character past `at`).
fn first_token_end(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    let mut end = at;
    while end < bytes.len() && bytes[end].is_ascii_alphanumeric() {
        end += 1;
    }
    if end == at {
        next_char(text, at)
    } else {
        end
    }
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// Keep non-overlapping findings: highest score first, then the longest, then the earliest;
/// the result is sorted by start. Deterministic for any input order.
pub fn resolve_overlaps(findings: &mut Vec<Finding>) {
    if findings.len() < 2 {
        return;
    }
    findings.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
            .then(a.entity.cmp(&b.entity))
    });
    // Kept spans by start; a candidate overlaps a kept span if the kept span starting at or
    // before it reaches into it, or the next kept span starts before it ends.
    let mut kept: BTreeMap<usize, Finding> = BTreeMap::new();
    for f in findings.drain(..) {
        let before = kept
            .range(..=f.start)
            .next_back()
            .is_some_and(|(_, k)| k.end > f.start);
        let after = kept
            .range(f.start..)
            .next()
            .is_some_and(|(s, _)| *s < f.end);
        if !before && !after {
            kept.insert(f.start, f);
        }
    }
    findings.extend(kept.into_values());
}

/// Count Unicode scalar values in UTF-8 bytes (bytes that are not continuation bytes).
pub(crate) fn count_chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| (**b as i8) >= -0x40).count()
}

/// Character (Unicode scalar) offsets of findings sorted by start: `(start, end)` each.
pub fn char_offsets<'a>(
    text: &'a str,
    findings: &'a [Finding],
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let bytes = text.as_bytes();
    // Character offsets equal byte offsets up to the first non-ASCII character, so only the
    // text up to the last finding's end decides.
    let last_end = findings.iter().map(|f| f.end).max().unwrap_or(0);
    let ascii = is_ascii_by_words(&bytes[..last_end]);
    let (mut byte_pos, mut char_pos) = (0usize, 0usize);
    findings.iter().map(move |f| {
        if ascii {
            return (f.start, f.end);
        }
        if f.start >= byte_pos {
            char_pos += count_chars(&bytes[byte_pos..f.start]);
        } else {
            char_pos -= count_chars(&bytes[f.start..byte_pos]);
        }
        let start = char_pos;
        char_pos += count_chars(&bytes[f.start..f.end]);
        byte_pos = f.end;
        (start, char_pos)
    })
}

/// `bytes.is_ascii()` eight bytes at a time to the end: texts are short, and the standard
/// one's byte-by-byte tail after 64-byte blocks cost more than the rest of the offset work.
fn is_ascii_by_words(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    let high = words.by_ref().fold(0u64, |acc, word| {
        acc | u64::from_ne_bytes(word.try_into().expect("chunks of eight bytes"))
    });
    let tail = words.remainder().iter().fold(0u8, |acc, &b| acc | b);
    high & 0x8080_8080_8080_8080 == 0 && tail < 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts that stress where candidates start: labelled and synthetic notes, and random
    /// mixes of every pattern's first and inner bytes.
    fn candidate_corpus() -> Vec<String> {
        let mut texts: Vec<String> = super::super::labelled::labelled_notes(1500, 11)
            .into_iter()
            .map(|n| n.text)
            .collect();
        let pieces = [
            "@",
            ":",
            "::",
            "=",
            "&",
            "a",
            "Z",
            "0",
            "9",
            "12",
            "345",
            "-",
            ".",
            " ",
            "\n",
            "\r",
            "ë",
            "日",
            "+1",
            "+44 ",
            "(",
            ")",
            "key",
            "Token=",
            "sv=",
            "sig=",
            "AKIA",
            "eyJ",
            "-----BEGIN ",
            "PRIVATE KEY-----",
            "http://",
            "WWW.",
            "Jan",
            "march ",
            "Mart",
            "Sep",
            "Nov",
            "No ",
            "app.",
            "tos",
            "DE89",
            "@x.com",
            "ab",
            "_",
            "/",
            "%",
            "AccountKey=",
            "fe80",
            "ffff:",
            "4111 1111",
            "2024-",
            "x@y.z",
            "password is ",
            "1.2.3.4",
            "api_key: ",
            "ü@",
            ".co",
            "k9",
            "de-",
            "@@",
            "%+",
        ];
        for seed in 0..3000u64 {
            let mut rng = crate::datasets::Rng::for_block(0xcafe, seed);
            let mut text = String::new();
            for _ in 0..rng.range(1, 40) {
                text.push_str(rng.pick(&pieces));
            }
            texts.push(text);
        }
        texts
    }

    #[test]
    fn vector_filter_passes_few_word_starts_of_prose() {
        if !std::is_x86_feature_detected!("avx2") {
            return; // no filter: every position is tested exactly
        }
        let detector = Detector::builtin().unwrap();
        let finder = detector.candidates.as_ref().expect("split search");
        let prose = "No issues reported during the visit; vitals normal and next check in a few \
            weeks. The patient asked about the follow-up schedule and was told to call the front \
            desk, who will send a reminder by post. Refund processed after review of the account \
            history; customer satisfied with the outcome and closed the case.";
        let (passed, exact) = finder
            .filter_and_exact_starts(prose)
            .expect("built-ins get the vector filter where the CPU has AVX2");
        assert!(
            exact.iter().all(|at| passed.contains(at)),
            "{passed:?} {exact:?}"
        );
        // With one bucket for all lower case first letters, 72 positions passed here (more
        // than one per word); with the letters grouped by their second letters, 41; with the
        // third byte as well, 14.
        let word_starts = prose.split_whitespace().count();
        assert!(
            passed.len() * 2 < word_starts,
            "{} of {word_starts} positions passed",
            passed.len()
        );
    }

    #[test]
    fn split_candidate_search_equals_the_combined_search() {
        // With the vector position filter (where the CPU has it) and without.
        for vector_filter in [true, false] {
            let mut detector = Detector::builtin().unwrap();
            let finder = detector
                .candidates
                .as_mut()
                .expect("built-ins use the split search");
            if !vector_filter {
                finder.drop_start_filter();
            }
            let finder = &*finder;
            let mut cache = detector.regex.create_cache();
            let mut state = finder.scratch();
            let (mut texts, mut compared) = (0, 0);
            for text in candidate_corpus() {
                finder.reset(&text, &mut state);
                texts += 1;
                for at in 0..=text.len() {
                    let combined = detector
                        .regex
                        .search_with(&mut cache, &Input::new(&text).span(at..text.len()))
                        .map(|m| Candidate {
                            start: m.start(),
                            end: m.end(),
                            pattern: m.pattern().as_usize(),
                        });
                    let split = finder.next(&text, at, &mut state).expect("within budget");
                    assert_eq!(split, combined, "{text:?} from {at}");
                    compared += usize::from(combined.is_some());
                }
            }
            assert!(
                texts > 4000 && compared > 100_000,
                "{texts} texts, {compared} candidates"
            );
        }
        let detector = Detector::builtin().unwrap();
        // And whole detections agree with a detector that has no split search.
        let mut plain = Detector::builtin().unwrap();
        plain.candidates = None;
        for text in candidate_corpus() {
            assert_eq!(detector.find(&text), plain.find(&text), "{text:?}");
        }
    }

    #[test]
    fn spans_without_exact_scores_are_the_same_spans() {
        let detector = Detector::builtin().unwrap();
        let mut scratch = detector.scratch();
        let (mut exact, mut spans) = (Vec::new(), Vec::new());
        let (mut findings, mut lowered) = (0, 0);
        for text in candidate_corpus() {
            detector.find_into(&text, &mut scratch, &mut exact);
            detector.spans_into(&text, &mut scratch, &mut spans);
            let span_of = |f: &Finding| (f.entity, f.start, f.end);
            assert_eq!(
                exact.iter().map(span_of).collect::<Vec<_>>(),
                spans.iter().map(span_of).collect::<Vec<_>>(),
                "{text:?}"
            );
            for (e, s) in exact.iter().zip(&spans) {
                assert!(
                    s.score >= detector.min_score && s.score <= e.score,
                    "{text:?}"
                );
                lowered += usize::from(s.score < e.score);
            }
            findings += exact.len();
        }
        // The corpus has context words, so some scores are lower bounds, and context still
        // decides where it must: a bare 9-digit SSN is kept only after "SSN".
        assert!(
            findings > 4000 && lowered > 1000,
            "{findings} findings, {lowered} lowered"
        );
        detector.spans_into("ref 123456789", &mut scratch, &mut spans);
        assert!(spans.is_empty());
        detector.spans_into("SSN: 123456789", &mut scratch, &mut spans);
        assert_eq!(spans.len(), 1);
    }

    #[test]
    fn overlapping_walks_fall_back_to_the_combined_search() {
        // Each header or token starts a walk that runs to the end of the value and fails:
        // quadratic without the walk budget. The result must equal the combined search's.
        let detector = Detector::builtin().unwrap();
        let mut plain = Detector::builtin().unwrap();
        plain.candidates = None;
        for piece in [
            "-----BEGIN PRIVATE KEY----- ",
            "eyJabcdefghij-",
            "AccountKey=abc+",
        ] {
            let text = piece.repeat(400_000 / piece.len());
            let started = std::time::Instant::now();
            let found = detector.find(&text);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{piece}: {:?}",
                started.elapsed()
            );
            assert_eq!(found, plain.find(&text), "{piece}");
        }
    }

    fn entities(detector: &Detector, text: &str) -> Vec<(String, String)> {
        detector
            .find(text)
            .iter()
            .map(|f| {
                (
                    detector.entity_name(f.entity).to_owned(),
                    text[f.start..f.end].to_owned(),
                )
            })
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn finds_each_builtin_entity() {
        let d = Detector::builtin().unwrap();
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let text = format!(
            "mail jane.doe@example.com, card 4111 1111 1111 1111, ssn 123-45-6789, iban GB82WEST12345698765432, \
             from 192.168.1.20 and 2001:db8::1, see https://example.com/a/b. Born 1990-04-12. \
             Bearer {jwt} key AKIAIOSFODNN7EXAMPLE, call (201) 555-0123."
        );
        let found = entities(&d, &text);
        let expected = pairs(&[
            ("EMAIL", "jane.doe@example.com"),
            ("CREDIT_CARD", "4111 1111 1111 1111"),
            ("US_SSN", "123-45-6789"),
            ("IBAN", "GB82WEST12345698765432"),
            ("IPV4", "192.168.1.20"),
            ("IPV6", "2001:db8::1"),
            ("URL", "https://example.com/a/b"),
            ("DATE", "1990-04-12"),
            ("JWT", jwt),
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            ("PHONE", "(201) 555-0123"),
        ]);
        assert_eq!(found, expected);
    }

    #[test]
    fn rejected_candidates_do_not_hide_neighbours() {
        let d = Detector::builtin().unwrap();
        assert_eq!(
            entities(&d, "room 12 201-555-0123 then 555-0100 2024-03-15"),
            pairs(&[("PHONE", "201-555-0123"), ("DATE", "2024-03-15")])
        );
        assert_eq!(
            entities(&d, "card 4111 1111 1111 1111 12 items"),
            pairs(&[("CREDIT_CARD", "4111 1111 1111 1111")])
        );
        // Version strings, order numbers, Luhn-invalid cards and invalid SSNs are not PII.
        assert!(d
            .find("v2.10.3, order #98765432, 4111 1111 1111 1112, 666-12-3456, 1.2.3.4.5")
            .is_empty());
    }

    #[test]
    fn context_raises_scores_and_bare_ssn_needs_it() {
        let d = Detector::builtin().unwrap();
        assert!(d.find("ref 123456789").is_empty());
        let found = d.find("SSN: 123456789");
        assert_eq!(found.len(), 1);
        assert!((found[0].score - 0.65).abs() < 1e-9);
        let plain = d.find("x 123-45-6789")[0].score;
        let boosted = d.find("ssn 123-45-6789")[0].score;
        assert!(boosted > plain);
    }

    #[test]
    fn secrets_in_connection_strings_and_urls() {
        let d = Detector::builtin().unwrap();
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 64]);
        let conn = format!("DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={key};EndpointSuffix=core.windows.net");
        let found = entities(&d, &conn);
        assert_eq!(found[0].0, "AZURE_STORAGE_KEY");
        assert!(found[0].1.starts_with("DefaultEndpointsProtocol") && found[0].1.ends_with("=="));
        let sas = "https://acct1.blob.core.windows.net/c/b.csv?sv=2022-11-02&se=2024-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5%3D";
        let found = entities(&d, sas);
        assert_eq!(
            found[0],
            (
                "URL".into(),
                "https://acct1.blob.core.windows.net/c/b.csv".into()
            )
        );
        assert_eq!(found[1].0, "AZURE_SAS_TOKEN");
        assert!(found[1].1.starts_with("sv=") && found[1].1.ends_with("%3D"));
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234abcd\n-----END RSA PRIVATE KEY-----";
        assert_eq!(entities(&d, pem), pairs(&[("PEM_PRIVATE_KEY", pem)]));
        assert_eq!(
            entities(&d, "export API_KEY='q8Zr2LmN4vB7tY1pR6sXw'"),
            pairs(&[("API_KEY", "q8Zr2LmN4vB7tY1pR6sXw")])
        );
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(entities(&d, &format!("token: {jwt}"))[0].0, "JWT");
        assert!(d.find("password: hunter2hunter2hunter2").is_empty());
    }

    #[test]
    fn catastrophic_patterns_stay_linear() {
        let haystack = "a".repeat(100_000);
        for validator in [None, Some("luhn")] {
            let nested = Recognizer::custom("NESTED", "(a+)+$", validator, &[], 0.9).unwrap();
            let detector = Detector::with_custom(vec![nested]).unwrap();
            let started = std::time::Instant::now();
            let found = detector.find(&haystack);
            assert_eq!(found.len(), usize::from(validator.is_none()));
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
        }
        // The same with a rejected candidate at every token of a long value.
        let nested = Recognizer::custom("NESTED", "(a+)+b?", Some("luhn"), &[], 0.9).unwrap();
        let detector = Detector::with_custom(vec![nested]).unwrap();
        let started = std::time::Instant::now();
        assert!(detector.find(&"aaaa ".repeat(20_000)).is_empty());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn long_values_empty_values_and_custom_recognizers() {
        let d = Detector::builtin().unwrap();
        assert!(d.find("").is_empty());
        let sentence = "Zoë wrote from zoe@example.com; order 12345, v2.10.3. ";
        let repeats = 10_000_000 / sentence.len();
        let long = sentence.repeat(repeats);
        let started = std::time::Instant::now();
        assert_eq!(d.find(&long).len(), repeats);
        let digits = "7".repeat(10_000_000);
        assert!(d.find(&digits).is_empty());
        // A rejected candidate at every other byte: the worst case for retries.
        let pairs = "1 ".repeat(100_000);
        assert!(d.find(&pairs).is_empty());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );

        let employee =
            Recognizer::custom("EMPLOYEE_ID", "EMP-[0-9]{6}", None, &["employee"], 0.4).unwrap();
        let d = Detector::with_custom(vec![employee]).unwrap();
        assert!(
            d.find("EMP-123456").is_empty(),
            "below the minimum score without context"
        );
        let found = d.find("employee EMP-123456, mail a@b.co");
        assert_eq!(d.entity_name(found[0].entity), "EMPLOYEE_ID");
        assert_eq!(d.entity_name(found[1].entity), "EMAIL");
    }

    #[test]
    fn context_words_outside_ascii_ignore_case() {
        let words = ["teléfono", "τηλέφωνο", "ΟΔΟΣ", "key"];
        let extension = Recognizer::custom("EXTENSION", "EXT-[0-9]{4}", None, &words, 0.4).unwrap();
        let d = Detector::with_custom(vec![extension]).unwrap();
        for text in [
            "TELÉFONO EXT-1234",
            "Teléfono: EXT-1234",
            "ΤΗΛΈΦΩΝΟ EXT-1234",
            "στην οδος EXT-1234",
            "στην ΟΔΟΣ EXT-1234",
            // KELVIN SIGN, whose lower case is 'k'.
            "\u{212a}EY EXT-1234",
        ] {
            let found = d.find(text);
            assert_eq!(found.len(), 1, "{text:?}");
            assert_eq!(&text[found[0].start..found[0].end], "EXT-1234");
        }
        for text in [
            "TELEFONO EXT-1234",
            "ΤΗΛΕΦΏΝΟ. EXT-1234",
            "ΤΗΛΈΦΩΝΟ. EXT-1234",
        ] {
            assert!(d.find(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn prefilter_key_runs_and_www_match_a_byte_loop() {
        // The previous byte loop (with "www." in any case, as the URL pattern reads it).
        let reference = |bytes: &[u8]| {
            let mut run = 0;
            for &b in bytes {
                run = if is_token_byte(b) { run + 1 } else { 0 };
                if run >= 16 {
                    return true;
                }
            }
            bytes.windows(4).any(|w| w.eq_ignore_ascii_case(b"www."))
        };
        let mut rng = crate::datasets::Rng::for_block(0x9e11, 0);
        let pieces = [
            "a", "Z", "w", "W", "www.", "Www.", ".", "_", "-", "~", "+", " ", ",", "é", "\0",
            "AKIA", "abcdefgh", "\u{7f}", "`", "{", "@", "[", "/",
        ];
        for _ in 0..20_000 {
            let count = rng.range(0, 60);
            let text: String = (0..count).map(|_| rng.pick(&pieces)).collect();
            let bytes = text.as_bytes();
            assert_eq!(has_key_run_or_www(bytes), reference(bytes), "{text:?}");
            let window = &bytes[..bytes.len().min(64)];
            let mut padded = window.to_vec();
            padded.resize(64, 0);
            assert_eq!(
                WindowMasks::of(window),
                WindowMasks::of_bytes(&padded),
                "{text:?}"
            );
        }
        // Every byte value, alone in a window, in each 16-byte lane.
        for b in 0..=255u8 {
            for at in [0, 15, 16, 47, 63] {
                let mut window = [b'!'; 64];
                window[at] = b;
                assert_eq!(
                    WindowMasks::of(&window),
                    WindowMasks::of_bytes(&window),
                    "{b}"
                );
            }
        }
        // A run of 16 that straddles the first two windows, and "Www." in a short host name
        // (it once needed a 16-byte run to be scanned).
        let straddling = format!("{}{}", " ".repeat(40), "k".repeat(16));
        assert!(has_key_run_or_www(straddling.as_bytes()));
        assert!(!has_key_run_or_www(" k".repeat(60).as_bytes()));
        let detector = Detector::builtin().unwrap();
        let found = detector.find("Visit Www.contoso.com today");
        assert_eq!(found.len(), 1);
        assert_eq!(detector.entity_name(found[0].entity), "URL");
    }

    #[test]
    fn prefilter_skips_clean_text() {
        assert!(!worth_scanning(
            b"No issues reported during the visit; vitals normal."
        ));
        assert!(worth_scanning(b"call 555"));
        assert!(worth_scanning(b"see www.example.com"));
        assert!(worth_scanning(b"key AKIAIOSFODNNXEXAMPLE"));
        let triggers: Vec<u8> = (0..=255u8).filter(|b| is_trigger(*b)).collect();
        assert_eq!(triggers, b"/0123456789:=@");
        // A trigger anywhere, in a 32-byte block or in the tail after the last block.
        for trigger in [b'7', b'@', b'=', b':', b'/'] {
            for at in [0, 5, 31, 32, 63, 64, 70] {
                let mut text = vec![b'x'; 71];
                text.iter_mut().step_by(4).for_each(|b| *b = b' ');
                assert!(!worth_scanning(&text));
                text[at] = trigger;
                assert!(worth_scanning(&text), "{} at {at}", trigger as char);
            }
        }
    }

    #[test]
    fn overlaps_resolve_by_score_length_start() {
        let f = |entity, start, end, score| Finding {
            entity,
            start,
            end,
            score,
        };
        let mut v = vec![
            f(0, 0, 5, 0.5),
            f(1, 3, 10, 0.9),
            f(2, 12, 14, 0.5),
            f(3, 12, 15, 0.5),
            f(4, 20, 22, 0.5),
            f(5, 21, 23, 0.5),
        ];
        resolve_overlaps(&mut v);
        assert_eq!(
            v,
            vec![f(1, 3, 10, 0.9), f(3, 12, 15, 0.5), f(4, 20, 22, 0.5)]
        );
    }

    /// Context words as first written: every word compared at every word start.
    fn has_context_reference(text: &str, start: usize, words: &[String]) -> bool {
        let from = ceil_char_boundary(text, start.saturating_sub(CONTEXT_WINDOW_BYTES));
        let mut window = &text[from..start];
        if let Some(cut) = window
            .as_bytes()
            .windows(2)
            .rposition(|w| matches!(w, [b'.' | b'!' | b'?', b' ' | b'\n'] | [b';' | b'\n', _]))
        {
            window = &window[cut + 1..];
        }
        // Every character start at a word start, the rest lowercased as a whole (σ and ς
        // alike) against each word lowercased the same way.
        let fold = |s: &str| s.to_lowercase().replace('ς', "σ");
        window
            .char_indices()
            .filter(|&(i, _)| i == 0 || !window.as_bytes()[i - 1].is_ascii_alphanumeric())
            .any(|(i, _)| {
                let rest = fold(&window[i..]);
                words
                    .iter()
                    .any(|word| !word.is_empty() && rest.starts_with(&fold(word)))
            })
    }

    #[test]
    fn context_words_are_found_as_by_the_reference() {
        let words: Vec<String> = [
            "phone",
            "tel",
            "ss#",
            "social security",
            "e-mail",
            "",
            "ñame",
            "teléfono",
            "τηλέφωνο",
            "odos",
            "οδος",
            "key",
            "id",
        ]
        .map(String::from)
        .to_vec();
        let context = ContextWords::new(&words);
        let pieces = [
            "phone",
            "PHONE",
            "Tel",
            "tel",
            "telephone",
            "xphone",
            "ss#",
            "SS",
            "#",
            "social",
            "security",
            "e-",
            "mail",
            "ñame",
            "Ñame",
            " ",
            ". ",
            ".",
            "; ",
            ";",
            "\n",
            "! ",
            "?",
            "a",
            "9",
            "-",
            "é",
            "TELÉFONO",
            "Teléfono",
            "TELEFONO",
            "ΤΗΛΈΦΩΝΟ",
            "Τηλέφωνο",
            "ΟΔΟΣ",
            "οδος",
            "\u{212a}",
            "ey",
            "\u{130}",
            "d",
        ];
        let mut rng = crate::datasets::Rng::for_block(0xc0de, 0);
        let (mut found, mut tried) = (0, 0);
        for _ in 0..20_000 {
            let count = rng.range(1, 14);
            let text: String = (0..count).map(|_| rng.pick(&pieces)).collect();
            for start in (0..=text.len()).filter(|&at| text.is_char_boundary(at)) {
                let expected = has_context_reference(&text, start, &words);
                assert_eq!(
                    has_context(&text, start, &context),
                    expected,
                    "{text:?} {start}"
                );
                found += usize::from(expected);
                tried += 1;
            }
        }
        // Both verdicts are common, so the comparison means something.
        assert!(
            found > tried / 10 && found < tried * 9 / 10,
            "{found} of {tried}"
        );
        assert!(!has_context("phone", 5, &ContextWords::new(&[])));
    }

    #[test]
    fn char_offsets_count_scalars() {
        let d = Detector::builtin().unwrap();
        let text = "Zoë Ünal 🙂 jürgen@example.com 😀 +49 30 12345678";
        let found = d.find(text);
        let offsets: Vec<_> = char_offsets(text, &found).collect();
        let chars: Vec<char> = text.chars().collect();
        let slice = |(s, e): (usize, usize)| chars[s..e].iter().collect::<String>();
        assert_eq!(slice(offsets[0]), "jürgen@example.com");
        assert_eq!(slice(offsets[1]), "+49 30 12345678");
        // Against counting from the start each time, with non-ASCII text before, between,
        // inside and after findings, on both sides of every eight-byte boundary.
        let pieces = [
            "a",
            "é",
            "🙂",
            " ",
            "zoë@example.com",
            "jo@example.org",
            "+49 30 12345678",
            "4111 1111 1111 1111",
            ". ",
        ];
        let mut rng = crate::datasets::Rng::for_block(0x0ff5, 0);
        let mut checked = 0;
        for _ in 0..3000 {
            let count = rng.range(1, 12);
            let text: String = (0..count).map(|_| rng.pick(&pieces)).collect();
            let found = d.find(&text);
            let naive = |byte: usize| text[..byte].chars().count();
            let expected: Vec<_> = found
                .iter()
                .map(|f| (naive(f.start), naive(f.end)))
                .collect();
            assert_eq!(
                char_offsets(&text, &found).collect::<Vec<_>>(),
                expected,
                "{text:?}"
            );
            checked += found.len();
        }
        assert!(checked > 3000, "{checked}");
        for len in 0..40 {
            let mut bytes = vec![b'a'; len];
            assert!(is_ascii_by_words(&bytes));
            for at in 0..len {
                bytes[at] = 0xc3;
                assert!(!is_ascii_by_words(&bytes), "{len} {at}");
                bytes[at] = b'a';
            }
        }
    }
}
