//! A vectorised first pass over the positions where a dense-DFA candidate can start.
//!
//! The candidate search tests each position exactly with one table load: the pair of bytes
//! there, under the look-behind class of the byte before. Most positions of text fail that test,
//! and testing them one by one was the largest single cost of detection on PII-dense text. This
//! filter rules most of them out 32 at a time, in the manner of the Teddy literal searcher:
//! nibble lookups (`pshufb`) of the first, second and third byte give the buckets a position can
//! be in, and an exact bitmap lookup of the byte before gives its look-behind class, which
//! selects the class's buckets. A bucket is a product of nibble sets, so it over-approximates:
//! every position the filter passes is still tested exactly, and the filter never drops a
//! position where the DFA, started there, still lives after three bytes (or has matched, or the
//! text ends first). That holds by construction and is checked over every live pair and each
//! third byte when the filter is built; the filter is not built when the check fails, when the
//! DFA has more than two look-behind classes, or when the CPU has no AVX2 (the search then
//! tests every position).
//!
//! Buckets: eight. Digits and the other non-letters get one per look-behind class and kind
//! (three are used by the built-ins). Letters share the rest: with one bucket per class for all
//! lower case letters, nearly every word start passed (the keywords' first letters `a`, `c`,
//! `d`, `f`, `j`, `m`, `n`, `p`, `s`, `t`, ... before any letter, once their second letters
//! blur into one set). Each letter's row of live second bytes (per class) starts as a group of
//! its own; the groups are merged greedily, the pair whose merge adds the fewest weighted false
//! passes first (frequent English letter pairs weigh most), and single rows are then moved
//! between groups while that lowers the total. Two 8-bit planes (16 buckets) passed fewer
//! still, but cost as much in the pass as they saved. The third byte then drops most live
//! keyword pairs that are only word starts ("no" is alive for "nov", "to" for "token", "se"
//! for "secret"), each of which cost a walk. On a paragraph of English prose (a test) the
//! kind buckets passed 72 positions, the letter groups 41 (15 of them live pairs), and with
//! the third byte 14 (1 alive after three bytes).

/// The look-behind classes the filter tells apart, and so the most it supports.
const CLASSES: usize = 2;
/// Buckets: one bit each of a nibble table's entry.
const BUCKETS: usize = 8;
/// Non-letter buckets: one per look-behind class for digits and one for everything else.
const NON_LETTER_KINDS: usize = 2;

fn non_letter_kind(byte: u8) -> usize {
    usize::from(!byte.is_ascii_digit())
}

/// Nibble tables of the filter (bit `b` of an entry: bucket `b`).
pub(super) struct StartFilter {
    first_lo: [u8; 16],
    first_hi: [u8; 16],
    second_lo: [u8; 16],
    second_hi: [u8; 16],
    third_lo: [u8; 16],
    third_hi: [u8; 16],
    /// Bit `hi` of `[lo]`: the ASCII byte `hi << 4 | lo` is in the look-behind class `ascii`
    /// (the one that holds no byte from 0x80 on).
    ascii_class_bitmap: [u8; 16],
    /// Buckets (bit `b`: bucket `b`) of the class that holds the bytes from 0x80 on, and of the
    /// other one.
    wide_class_buckets: u8,
    ascii_class_buckets: u8,
    /// Bytes whose presence in a text the same pass reports (unused slots repeat the first).
    needles: [u8; MAX_NEEDLES],
}

/// Bytes read per 32 positions: the byte before each, each, and the two after the last.
const WINDOW: usize = 35;
/// Most bytes [`StartFilter::scan`] reports the presence of.
pub(super) const MAX_NEEDLES: usize = 3;

/// A set of bytes as nibble sets: `lo` bit `l` and `hi` bit `h` for each byte `h << 4 | l`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct NibbleSets {
    lo: u16,
    hi: u16,
}

impl NibbleSets {
    fn add(&mut self, byte: u8) {
        self.lo |= 1 << (byte & 15);
        self.hi |= 1 << (byte >> 4);
    }

    fn union(self, other: Self) -> Self {
        Self {
            lo: self.lo | other.lo,
            hi: self.hi | other.hi,
        }
    }

    /// Whether `byte` is in the product of the two sets.
    fn holds(self, byte: u8) -> bool {
        self.lo & (1 << (byte & 15)) != 0 && self.hi & (1 << (byte >> 4)) != 0
    }
}

/// A bucket while letters are grouped: the look-behind slots it serves and the nibble sets of
/// the first, second and third bytes it passes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Group {
    slots: u8,
    first: NibbleSets,
    second: NibbleSets,
    third: NibbleSets,
}

impl Group {
    fn union(self, other: Self) -> Self {
        Self {
            slots: self.slots | other.slots,
            first: self.first.union(other.first),
            second: self.second.union(other.second),
            third: self.third.union(other.third),
        }
    }

    /// Weighted false passes of the bucket (see [`text_weights`]).
    fn false_passes(self, alive: impl Fn(usize, u8, u8) -> bool, weights: &TextWeights) -> u64 {
        let printable = || 0x20..0x7fu8;
        let seconds: Vec<u8> = printable().filter(|&b| self.second.holds(b)).collect();
        let mut total = 0;
        for slot in 0..CLASSES {
            if self.slots & (1 << slot) == 0 {
                continue;
            }
            // Positions inside words (slot 1) are several times as common as word starts.
            let slot_weight = if slot == 1 { 3 } else { 1 };
            for first in printable().filter(|&b| self.first.holds(b)) {
                for &second in &seconds {
                    if !alive(slot, first, second) {
                        total += slot_weight * weights[usize::from(first)][usize::from(second)];
                    }
                }
            }
        }
        total
    }
}

/// Weights of printable byte pairs, `[first][second]`, by how often they occur in text.
type TextWeights = [[u64; 128]; 128];

/// The most frequent letter pairs of English text, in hundredths of a percent of all pairs.
#[rustfmt::skip]
const ENGLISH_BIGRAMS: [(&[u8; 2], u64); 42] = [
    (b"th", 356), (b"he", 307), (b"in", 243), (b"er", 205), (b"an", 199), (b"re", 185),
    (b"on", 176), (b"at", 149), (b"en", 145), (b"nd", 135), (b"ti", 134), (b"es", 134),
    (b"or", 128), (b"te", 120), (b"of", 117), (b"ed", 117), (b"is", 113), (b"it", 112),
    (b"al", 109), (b"ar", 107), (b"st", 105), (b"to", 104), (b"nt", 104), (b"ng", 95),
    (b"se", 93), (b"ha", 93), (b"as", 87), (b"ou", 87), (b"io", 83), (b"le", 83),
    (b"ve", 83), (b"co", 79), (b"me", 79), (b"de", 76), (b"hi", 76), (b"ri", 73),
    (b"ro", 73), (b"ic", 70), (b"ne", 69), (b"ea", 69), (b"ra", 69), (b"ce", 65),
];

/// Pair weights: every printable pair counts a little (letter pairs sixteen times as much), and
/// the frequent English letter pairs far more (a capitalised word's first pair a quarter as
/// much), so a bucket that passes "th" or "he" costs more than one that passes "qz".
fn text_weights() -> Box<TextWeights> {
    let letter = |b: u8| if b.is_ascii_alphabetic() { 4 } else { 1 };
    let mut weights = Box::new([[0u64; 128]; 128]);
    for first in 0x20..0x7fu8 {
        for second in 0x20..0x7fu8 {
            weights[usize::from(first)][usize::from(second)] = letter(first) * letter(second);
        }
    }
    for (pair, frequency) in ENGLISH_BIGRAMS {
        let (first, second) = (usize::from(pair[0]), usize::from(pair[1]));
        weights[first][second] += frequency;
        weights[first - 32][second] += frequency / 4;
    }
    weights
}

/// Groups `rows` into `count` buckets with few weighted false passes: greedy merging (the pair
/// whose merge adds the least), then single rows moved to another bucket while that lowers the
/// total (on the prose of the engine's filter test: 43 positions passed after the merging
/// alone, 41 after the moves).
fn group_rows(
    rows: Vec<Group>,
    count: usize,
    alive: &impl Fn(usize, u8, u8) -> bool,
) -> Vec<Group> {
    let weights = text_weights();
    let cost = |group: Group| group.false_passes(alive, &weights);
    let union = |members: &[Group]| members.iter().copied().reduce(Group::union);
    let mut members: Vec<Vec<Group>> = rows.into_iter().map(|row| vec![row]).collect();
    let mut groups: Vec<Group> = members.iter().map(|m| m[0]).collect();
    let mut costs: Vec<u64> = groups.iter().map(|&g| cost(g)).collect();
    // Added cost of merging `i` and `j` (`j < i`), kept for every pair, updated after a merge.
    let added = |groups: &[Group], costs: &[u64], i: usize, j: usize| {
        cost(groups[i].union(groups[j])).saturating_sub(costs[i] + costs[j])
    };
    let mut pair_cost: Vec<Vec<u64>> = (0..groups.len())
        .map(|i| (0..i).map(|j| added(&groups, &costs, i, j)).collect())
        .collect();
    while groups.len() > count {
        let (mut best, mut at) = (u64::MAX, (1, 0));
        for (i, row) in pair_cost.iter().enumerate() {
            for (j, &added) in row.iter().enumerate() {
                if added < best {
                    (best, at) = (added, (i, j));
                }
            }
        }
        let (i, j) = at;
        // `j < i`: drop `i`, keep the merge in `j`.
        let moved = members.remove(i);
        members[j].extend(moved);
        groups[j] = groups[j].union(groups[i]);
        costs[j] = cost(groups[j]);
        groups.remove(i);
        costs.remove(i);
        pair_cost.remove(i);
        for row in pair_cost.iter_mut().skip(i) {
            row.remove(i);
        }
        for k in 0..groups.len() {
            if k != j {
                let (hi, lo) = if k > j { (k, j) } else { (j, k) };
                pair_cost[hi][lo] = added(&groups, &costs, hi, lo);
            }
        }
    }
    let mut improved = true;
    while improved {
        improved = false;
        for from in 0..groups.len() {
            let mut m = 0;
            while m < members[from].len() {
                let row = members[from][m];
                let rest: Vec<Group> = (0..members[from].len())
                    .filter(|&k| k != m)
                    .map(|k| members[from][k])
                    .collect();
                let Some(left) = union(&rest) else {
                    m += 1;
                    continue;
                };
                let left_cost = cost(left);
                let best = (0..groups.len())
                    .filter(|&to| to != from)
                    .map(|to| {
                        let joined = groups[to].union(row);
                        (to, joined, cost(joined))
                    })
                    .filter(|&(to, _, joined_cost)| {
                        left_cost + joined_cost < costs[from] + costs[to]
                    })
                    .min_by_key(|&(to, _, joined_cost)| left_cost + joined_cost - costs[to]);
                match best {
                    Some((to, joined, joined_cost)) => {
                        members[from] = rest;
                        members[to].push(row);
                        (groups[from], costs[from]) = (left, left_cost);
                        (groups[to], costs[to]) = (joined, joined_cost);
                        improved = true;
                    }
                    None => m += 1,
                }
            }
        }
    }
    groups
}

impl StartFilter {
    /// A filter for a DFA whose start state after byte `b` is number `start_of[b]` and where
    /// `pair_alive[first << 8 | second]` has bit `s` when a match can start at `first, second`
    /// under start state `s`. `None` where the filter cannot serve (see the module notes).
    /// `needles` (at most [`MAX_NEEDLES`]): bytes whose presence [`StartFilter::scan`] reports.
    pub(super) fn new(
        start_of: &[u8; 256],
        pair_alive: &[u8; 1 << 16],
        thirds: impl Fn(u8, u8, u8) -> [u64; 4],
        needles: &[u8],
    ) -> Option<Self> {
        if !avx2_available() || needles.len() > MAX_NEEDLES {
            return None;
        }
        let mut needle_slots = [needles.first().copied().unwrap_or(0); MAX_NEEDLES];
        needle_slots[..needles.len()].copy_from_slice(needles);
        let wide = start_of[0x80];
        if start_of[0x80..].iter().any(|&s| s != wide) || start_of.iter().any(|&s| s > 1) {
            return None;
        }
        let ascii = 1 - wide;
        // Slot 0 for the class of the bytes from 0x80 on, slot 1 for the other.
        let start_of_slot = |slot: usize| if slot == 0 { wide } else { ascii };
        let alive = |slot: usize, first: u8, second: u8| {
            pair_alive[usize::from(first) << 8 | usize::from(second)] & (1 << start_of_slot(slot))
                != 0
        };
        // Non-letters: one bucket per slot and kind. Letters: one group per slot and first
        // letter, merged down to the buckets left.
        let empty = Group {
            slots: 0,
            first: NibbleSets::default(),
            second: NibbleSets::default(),
            third: NibbleSets::default(),
        };
        let mut fixed = [empty; CLASSES * NON_LETTER_KINDS];
        let mut letters = Vec::new();
        for slot in 0..CLASSES {
            for first in 0..=255u8 {
                let mut group = Group {
                    slots: 1 << slot,
                    ..empty
                };
                group.first.add(first);
                for second in (0..=255u8).filter(|&second| alive(slot, first, second)) {
                    group.second.add(second);
                    let thirds = thirds(start_of_slot(slot), first, second);
                    for third in (0..=255u8).filter(|&t| in_set(&thirds, t)) {
                        group.third.add(third);
                    }
                }
                if group.second == NibbleSets::default() {
                    continue;
                }
                if first.is_ascii_alphabetic() {
                    letters.push(group);
                } else {
                    let bucket = &mut fixed[slot * NON_LETTER_KINDS + non_letter_kind(first)];
                    *bucket = bucket.union(group);
                }
            }
        }
        let fixed: Vec<Group> = fixed.into_iter().filter(|g| g.slots != 0).collect();
        let letter_buckets = BUCKETS - fixed.len();
        let buckets: Vec<Group> = fixed
            .into_iter()
            .chain(group_rows(letters, letter_buckets, &alive))
            .collect();
        let mut filter = Self {
            first_lo: [0; 16],
            first_hi: [0; 16],
            second_lo: [0; 16],
            second_hi: [0; 16],
            third_lo: [0; 16],
            third_hi: [0; 16],
            ascii_class_bitmap: [0; 16],
            wide_class_buckets: 0,
            ascii_class_buckets: 0,
            needles: needle_slots,
        };
        for byte in 0..0x80u8 {
            if start_of[usize::from(byte)] == ascii {
                filter.ascii_class_bitmap[usize::from(byte & 15)] |= 1 << (byte >> 4);
            }
        }
        for (index, bucket) in buckets.iter().enumerate() {
            let bit = 1u8 << index;
            let fill = |table: &mut [u8; 16], set: u16| {
                for (nibble, entry) in table.iter_mut().enumerate() {
                    if set & (1 << nibble) != 0 {
                        *entry |= bit;
                    }
                }
            };
            fill(&mut filter.first_lo, bucket.first.lo);
            fill(&mut filter.first_hi, bucket.first.hi);
            fill(&mut filter.second_lo, bucket.second.lo);
            fill(&mut filter.second_hi, bucket.second.hi);
            fill(&mut filter.third_lo, bucket.third.lo);
            fill(&mut filter.third_hi, bucket.third.hi);
            if bucket.slots & 1 != 0 {
                filter.wide_class_buckets |= bit;
            }
            if bucket.slots & 2 != 0 {
                filter.ascii_class_buckets |= bit;
            }
        }
        // The filter must pass every position the exact test passes: each look-behind byte
        // must select its class's buckets, each live pair must be in one of them, and with each
        // third byte after which the DFA still lives (or has matched), in one of those.
        for behind in 0..=255u8 {
            let expected = if start_of[usize::from(behind)] == wide {
                filter.wide_class_buckets
            } else {
                filter.ascii_class_buckets
            };
            if filter.class_buckets(behind) != expected {
                return None;
            }
        }
        for first in 0..=255u8 {
            for second in 0..=255u8 {
                let pair = filter.pair_buckets(first, second);
                for (slot, buckets) in [filter.wide_class_buckets, filter.ascii_class_buckets]
                    .into_iter()
                    .enumerate()
                {
                    if !alive(slot, first, second) {
                        continue;
                    }
                    if pair & buckets == 0 {
                        return None;
                    }
                    let thirds = thirds(start_of_slot(slot), first, second);
                    let missed = (0..=255u8).any(|third| {
                        in_set(&thirds, third) && pair & buckets & filter.third_buckets(third) == 0
                    });
                    if missed {
                        return None;
                    }
                }
            }
        }
        Some(filter)
    }

    /// The buckets the pair `first, second` can be in, as the vector code computes them.
    fn pair_buckets(&self, first: u8, second: u8) -> u8 {
        let (lo, hi) = (|b: u8| usize::from(b & 15), |b: u8| usize::from(b >> 4));
        self.first_lo[lo(first)]
            & self.first_hi[hi(first)]
            & self.second_lo[lo(second)]
            & self.second_hi[hi(second)]
    }

    /// The buckets a third byte `third` can be in, as the vector code computes them.
    fn third_buckets(&self, third: u8) -> u8 {
        self.third_lo[usize::from(third & 15)] & self.third_hi[usize::from(third >> 4)]
    }

    /// The buckets of the look-behind class of `behind`, as the vector code computes them.
    fn class_buckets(&self, behind: u8) -> u8 {
        let row = self.ascii_class_bitmap[usize::from(behind & 15)];
        if behind < 0x80 && row & (1 << (behind >> 4)) != 0 {
            self.ascii_class_buckets
        } else {
            self.wide_class_buckets
        }
    }

    /// The filter's verdict for one position (`third`: `None` at the end of the text).
    #[cfg(test)]
    fn passes(&self, behind: u8, first: u8, second: u8, third: Option<u8>) -> bool {
        let third_buckets = third.map_or(u8::MAX, |third| self.third_buckets(third));
        self.pair_buckets(first, second) & self.class_buckets(behind) & third_buckets != 0
    }

    /// One pass over a text. `passed` is filled with, per 32 positions from position 1, those
    /// that may start a match: bit `i` of word `w` for position `1 + 32 w + i` (positions
    /// without a second byte are never set). The result has bit `k` set when `needles[k]`
    /// occurs in the text.
    pub(super) fn scan(&self, bytes: &[u8], passed: &mut Vec<u32>) -> u8 {
        passed.clear();
        passed.resize(bytes.len().div_ceil(32), 0);
        if bytes.len() >= WINDOW {
            // SAFETY: the filter exists only where AVX2 is available; the slice is long enough.
            let present = unsafe { self.scan_avx2(bytes, bytes.len(), passed) };
            // The windows read three bytes past each position, so the last one stops a
            // position short: the last position with a second byte gets the pair's verdict here.
            let last = bytes.len() - 2;
            let buckets = self.pair_buckets(bytes[last], bytes[last + 1]);
            if buckets & self.class_buckets(bytes[last - 1]) != 0 {
                passed[(last - 1) / 32] |= 1 << ((last - 1) % 32);
            }
            return present;
        }
        // A short text is copied into a full window, padded with a byte that is no needle.
        let pad = (1..=u8::MAX)
            .find(|b| !self.needles.contains(b))
            .unwrap_or_default();
        let mut padded = [pad; WINDOW];
        padded[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: as above.
        unsafe { self.scan_avx2(&padded, bytes.len(), passed) }
    }

    /// [`StartFilter::scan`] over the first `len` bytes of `bytes` (at least [`WINDOW`] long;
    /// bytes past `len` are padding that holds no needle).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn scan_avx2(&self, bytes: &[u8], len: usize, passed: &mut [u32]) -> u8 {
        use std::arch::x86_64::*;
        debug_assert!(bytes.len() >= WINDOW && len <= bytes.len());
        let table = |t: &[u8; 16]| {
            // SAFETY: `t` is 16 readable bytes.
            _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(t.as_ptr().cast()) })
        };
        let (first_lo, first_hi) = (table(&self.first_lo), table(&self.first_hi));
        let (second_lo, second_hi) = (table(&self.second_lo), table(&self.second_hi));
        let (third_lo, third_hi) = (table(&self.third_lo), table(&self.third_hi));
        let class_bitmap = table(&self.ascii_class_bitmap);
        // Bit `hi` of a bitmap row, for `hi < 8` (a byte from 0x80 on gets 0: the wide class).
        let bit_of_hi = table(&[1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 0, 0, 0, 0, 0]);
        let ascii_buckets = _mm256_set1_epi8(self.ascii_class_buckets as i8);
        let wide_buckets = _mm256_set1_epi8(self.wide_class_buckets as i8);
        let needles = self.needles.map(|n| _mm256_set1_epi8(n as i8));
        let nibble = _mm256_set1_epi8(0x0f);
        let zero = _mm256_setzero_si256();
        let lo = |v: __m256i| _mm256_and_si256(v, nibble);
        let hi = |v: __m256i| _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble);
        let mut seen = [zero; MAX_NEEDLES];
        debug_assert_eq!(passed.len(), len.div_ceil(32));
        for (word, slot) in passed.iter_mut().enumerate() {
            let at = 32 * word;
            // The last window overlaps the one before rather than reading past the end.
            let base = at.min(bytes.len() - WINDOW);
            // SAFETY: `base + WINDOW <= bytes.len()`.
            let (behind, first, second, third) = unsafe {
                let window = bytes.as_ptr().add(base);
                (
                    _mm256_loadu_si256(window.cast()),
                    _mm256_loadu_si256(window.add(1).cast()),
                    _mm256_loadu_si256(window.add(2).cast()),
                    _mm256_loadu_si256(window.add(3).cast()),
                )
            };
            let buckets = _mm256_and_si256(
                _mm256_and_si256(
                    _mm256_shuffle_epi8(first_lo, lo(first)),
                    _mm256_shuffle_epi8(first_hi, hi(first)),
                ),
                _mm256_and_si256(
                    _mm256_shuffle_epi8(second_lo, lo(second)),
                    _mm256_shuffle_epi8(second_hi, hi(second)),
                ),
            );
            let in_ascii_class = _mm256_and_si256(
                _mm256_shuffle_epi8(class_bitmap, lo(behind)),
                _mm256_shuffle_epi8(bit_of_hi, hi(behind)),
            );
            let wide_class = _mm256_cmpeq_epi8(in_ascii_class, zero);
            let class_buckets = _mm256_blendv_epi8(ascii_buckets, wide_buckets, wide_class);
            let pair_kept = _mm256_and_si256(buckets, class_buckets);
            let third_buckets = _mm256_and_si256(
                _mm256_shuffle_epi8(third_lo, lo(third)),
                _mm256_shuffle_epi8(third_hi, hi(third)),
            );
            let kept = _mm256_and_si256(pair_kept, third_buckets);
            let pair_starts = !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(pair_kept, zero)) as u32);
            let starts = !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(kept, zero)) as u32);
            // Bit `i` is position `base + 1 + i`, its third byte `base + 3 + i`: where that is
            // past the text, the pair alone decides.
            let with_third = len.saturating_sub(base + 3).min(32);
            let with_third = ((1u64 << with_third) - 1) as u32;
            let starts = starts | pair_starts & !with_third;
            // The word starts at `at + 1`.
            let starts = starts.checked_shr((at - base) as u32).unwrap_or(0);
            // Positions with a second byte within `len`.
            let valid = len.saturating_sub(at + 2).min(32);
            *slot = starts & ((1u64 << valid) - 1) as u32;
            // Needles over each window's bytes 3..35: with bytes 0 to 2 (below), every byte.
            for (seen, needle) in seen.iter_mut().zip(needles) {
                *seen = _mm256_or_si256(*seen, _mm256_cmpeq_epi8(third, needle));
            }
        }
        let head = &bytes[..len.min(3)];
        (0..MAX_NEEDLES).fold(0, |bits, k| {
            let found = _mm256_movemask_epi8(seen[k]) != 0 || head.contains(&self.needles[k]);
            bits | u8::from(found) << k
        })
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn scan_avx2(&self, _bytes: &[u8], _len: usize, _passed: &mut [u32]) -> u8 {
        unreachable!("the filter is built only where AVX2 is available")
    }
}

/// Whether `byte` is in the 256-bit set `set`.
fn in_set(set: &[u64; 4], byte: u8) -> bool {
    set[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0
}

fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy two-class table: matches start at a digit pair after a non-word byte, or at "key"
    /// anywhere.
    fn toy() -> ([u8; 256], Box<[u8; 1 << 16]>) {
        let mut start_of = [0u8; 256];
        for b in 0..=255u8 {
            start_of[usize::from(b)] = u8::from(b.is_ascii_alphanumeric() || b == b'_');
        }
        let mut pair: Box<[u8; 1 << 16]> = vec![0u8; 1 << 16].try_into().unwrap();
        for a in b'0'..=b'9' {
            for b in b'0'..=b'9' {
                pair[usize::from(a) << 8 | usize::from(b)] |= 1;
            }
        }
        pair[usize::from(b'k') << 8 | usize::from(b'e')] |= 0b11;
        (start_of, pair)
    }

    /// The toy's third bytes: only `y` after "ke", anything after a digit pair.
    fn toy_thirds(_start: u8, first: u8, second: u8) -> [u64; 4] {
        if (first, second) == (b'k', b'e') {
            let mut set = [0; 4];
            set[usize::from(b'y' >> 6)] |= 1 << (b'y' & 63);
            set
        } else {
            [u64::MAX; 4]
        }
    }

    #[test]
    fn vector_scan_agrees_with_the_scalar_verdict_and_covers_the_exact_test() {
        let (start_of, pair) = toy();
        let Some(filter) = StartFilter::new(&start_of, &pair, toy_thirds, b"@:") else {
            return; // no AVX2 here: the search tests every position
        };
        let alphabet = b"0123456789 key_x.\xc3\xa9\n@:";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut passed = Vec::new();
        for len in 0..150usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let present = filter.scan(&bytes, &mut passed);
            assert_eq!(present & 1 != 0, bytes.contains(&b'@'), "{bytes:?}");
            assert_eq!(present & 2 != 0, bytes.contains(&b':'), "{bytes:?}");
            assert_eq!(passed.len(), len.div_ceil(32), "{bytes:?}");
            for (w, word) in passed.iter().enumerate() {
                for i in 0..32 {
                    let pos = 1 + 32 * w + i;
                    let set = word & (1 << i) != 0;
                    if pos + 1 >= len {
                        assert!(!set, "no second byte at {pos}");
                        continue;
                    }
                    let (behind, first, second) = (bytes[pos - 1], bytes[pos], bytes[pos + 1]);
                    let third = bytes.get(pos + 2).copied();
                    assert_eq!(
                        set,
                        filter.passes(behind, first, second, third),
                        "{bytes:?} at {pos}"
                    );
                    let start = start_of[usize::from(behind)];
                    let exact = pair[usize::from(first) << 8 | usize::from(second)] & (1 << start)
                        != 0
                        && third.is_none_or(|t| in_set(&toy_thirds(start, first, second), t));
                    assert!(set || !exact, "dropped a start: {bytes:?} at {pos}");
                }
            }
        }
    }

    #[test]
    fn filter_is_selective() {
        let (start_of, pair) = toy();
        let Some(filter) = StartFilter::new(&start_of, &pair, toy_thirds, b"@") else {
            return;
        };
        // Digits inside a word, letters other than "ke", and "ke" before anything but 'y'
        // never pass.
        let text = b"ab12 x9y hello 42 token turkey";
        let mut passed = Vec::new();
        assert_eq!(filter.scan(text, &mut passed), 0, "no '@'");
        let positions: Vec<usize> = (0..32)
            .filter(|i| passed[0] & (1 << i) != 0)
            .map(|i| i + 1)
            .collect();
        assert_eq!(positions, [15, 27]);
    }

    #[test]
    fn more_than_two_look_behind_classes_build_no_filter() {
        let (mut start_of, pair) = toy();
        start_of[usize::from(b'\n')] = 2;
        assert!(StartFilter::new(&start_of, &pair, toy_thirds, b"@").is_none());
    }
}
