//! Anchored walks of a dense DFA over a transition table laid out for them.
//!
//! A walk is one chain of dependent loads: each byte's transition needs the state the last
//! one gave. regex-automata's dense DFA stores a row per state (`state + class`), so every step
//! adds the class to the state and then loads: two operations on the chain. [`WalkTable`]
//! stores a column per byte class instead (`class * states + state`): the column is found
//! from the byte alone, off the chain, and the step is a single indexed load (redaction of the
//! synthetic notes about 5 % faster). The cache was not the cost: a copy with rows exactly as
//! long as the alphabet, which removes the cache-set conflicts a simulator showed for rows of
//! 512 bytes, measured no faster.
//!
//! States are renumbered: the dead state is 0 and the match states follow it, so one
//! comparison tells whether a state needs a look.

use regex_automata::dfa::{dense, Automaton};
use regex_automata::util::primitives::StateID;

/// A start state of one [`WalkTable`], made only by [`WalkTable::new`] (the walk relies on it
/// being a state of that table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WalkStart(u32);

impl WalkStart {
    /// The state, for [`WalkTable::next_state`].
    #[cfg(test)]
    pub(crate) fn state(self) -> u32 {
        self.0
    }
}

/// The anchored walks' copy of a dense DFA; see the module documentation.
pub(crate) struct WalkTable {
    /// Start of each byte's column in `next` (its class times the number of states).
    column_of: [u32; 256],
    /// `[column + state]`: the next state. One column per byte class, then one for the end of
    /// the text.
    next: Box<[u32]>,
    /// Start of the end-of-text column.
    end_of_text: usize,
    /// The highest-priority pattern of each match state (indexed by state; 0 elsewhere).
    pattern: Box<[u32]>,
    /// The dead state is 0 and the match states follow it: a state is one or the other exactly
    /// when it is at most this.
    last_special: u32,
}

impl WalkTable {
    /// The table of the states of `dfa` reachable from `starts`, and those start states in it
    /// (same order). `None` when `dfa` has quit states, which a walk here could not honour.
    pub(crate) fn new(
        dfa: &dense::DFA<Vec<u32>>,
        starts: &[StateID],
    ) -> Option<(Self, Vec<WalkStart>)> {
        let byte_classes = dfa.byte_classes();
        // One byte standing for each class.
        let mut representatives: Vec<u8> = Vec::new();
        for byte in 0..=255u8 {
            if usize::from(byte_classes.get(byte)) == representatives.len() {
                representatives.push(byte);
            }
        }
        // Classes are numbered in byte order, so that finds one byte of each; the walk's
        // unchecked loads rely on every byte's class having a column, so it is checked.
        if (0..=255u8).any(|byte| usize::from(byte_classes.get(byte)) >= representatives.len()) {
            return None;
        }

        // Every state reachable from `starts`, breadth first. (A dense DFA's state id is its
        // index shifted by `stride2`, and its dead state is the first.)
        let index = |state: StateID| state.as_usize() >> dfa.stride2();
        let dead = StateID::ZERO;
        if !dfa.is_dead_state(dead) {
            return None;
        }
        let mut seen: Vec<bool> = Vec::new();
        let mut found: Vec<StateID> = Vec::new();
        let mut visit = |state: StateID, found: &mut Vec<StateID>| {
            if seen.len() <= index(state) {
                seen.resize(index(state) + 1, false);
            }
            if !std::mem::replace(&mut seen[index(state)], true) {
                found.push(state);
            }
        };
        visit(dead, &mut found);
        for &start in starts {
            visit(start, &mut found);
        }
        let mut at = 0;
        while let Some(&state) = found.get(at) {
            at += 1;
            if dfa.is_dead_state(state) {
                continue;
            }
            if dfa.is_quit_state(state) {
                return None;
            }
            for &byte in &representatives {
                visit(dfa.next_state(state, byte), &mut found);
            }
            visit(dfa.next_eoi_state(state), &mut found);
        }
        // The dead state first, the match states next, then the rest, each in the order found.
        let (matches, rest): (Vec<StateID>, Vec<StateID>) =
            found[1..].iter().partition(|s| dfa.is_match_state(**s));
        let last_special = u32::try_from(matches.len()).ok()?;
        let order: Vec<StateID> = [dead].into_iter().chain(matches).chain(rest).collect();
        let states = order.len();
        let columns = representatives.len() + 1;
        u32::try_from(states.checked_mul(columns)?).ok()?;
        let mut renumbered = vec![0u32; seen.len()];
        for (state, new) in order.iter().zip(0u32..) {
            renumbered[index(*state)] = new;
        }
        let renumbered = |state: StateID| renumbered[index(state)];

        let mut next = vec![0u32; states * columns];
        let mut pattern = vec![0u32; states];
        for (new, state) in order.iter().enumerate() {
            if dfa.is_dead_state(*state) {
                continue;
            }
            for (class, &byte) in representatives.iter().enumerate() {
                next[class * states + new] = renumbered(dfa.next_state(*state, byte));
            }
            next[(columns - 1) * states + new] = renumbered(dfa.next_eoi_state(*state));
            if dfa.is_match_state(*state) {
                pattern[new] = u32::try_from(dfa.match_pattern(*state, 0).as_usize()).ok()?;
            }
        }
        let mut column_of = [0u32; 256];
        for (byte, column) in (0..=255u8).zip(column_of.iter_mut()) {
            // Bounded by `states * columns`, checked above to fit.
            *column = (usize::from(byte_classes.get(byte)) * states) as u32;
        }
        let starts = starts.iter().map(|s| WalkStart(renumbered(*s))).collect();
        Some((
            Self {
                column_of,
                next: next.into_boxed_slice(),
                end_of_text: (columns - 1) * states,
                pattern: pattern.into_boxed_slice(),
                last_special,
            },
            starts,
        ))
    }

    /// The state after `byte` from `state`.
    #[cfg(test)]
    pub(crate) fn next_state(&self, state: u32, byte: u8) -> u32 {
        self.next[self.column_of[usize::from(byte)] as usize + state as usize]
    }

    #[cfg(test)]
    pub(crate) fn is_dead(&self, state: u32) -> bool {
        state == 0
    }

    pub(crate) fn is_match(&self, state: u32) -> bool {
        state != 0 && state <= self.last_special
    }

    /// The anchored leftmost-first match at `start`, walking from the start state `start_state`:
    /// ((pattern, end), bytes walked). Matches show one byte late, as in any regex-automata
    /// DFA; the walk stops at the dead state and keeps the last match seen.
    #[inline(always)]
    pub(crate) fn walk(
        &self,
        bytes: &[u8],
        start: usize,
        start_state: WalkStart,
    ) -> (Option<(usize, usize)>, usize) {
        // A `usize` all along: a 32-bit state would be widened again on every step, on the chain.
        let mut state = start_state.0 as usize;
        // Once per walk, so that a start of another table cannot lead the loads astray.
        assert!(
            state < self.pattern.len(),
            "a start state of another walk table"
        );
        // The last match state seen and after how many bytes: its pattern is looked up once,
        // at the end (a digit run passes through a match state at nearly every byte).
        let (mut matched, mut matched_after) = (0usize, 0usize);
        let last_special = self.last_special as usize;
        let rest = &bytes[start..];
        let mut walked = rest.len();
        let mut dead = false;
        let next = self.next.as_ptr();
        for (offset, &byte) in rest.iter().enumerate() {
            // SAFETY: a column start plus a state is inside `next`: columns start at multiples
            // of the number of states below `next.len()`, and `state` is a state (the start,
            // checked above, or an entry, which `new` fills with states only).
            // The column pointer is made from the byte alone, so that the load is the only
            // step that waits for the previous state.
            state = unsafe {
                let column = next.add(self.column_of[usize::from(byte)] as usize);
                *column.add(state) as usize
            };
            if state <= last_special {
                if state == 0 {
                    (walked, dead) = (offset + 1, true);
                    break;
                }
                (matched, matched_after) = (state, offset);
            }
        }
        if !dead {
            let end_of_text = self.next[self.end_of_text + state];
            if self.is_match(end_of_text) {
                (matched, matched_after) = (end_of_text as usize, rest.len());
            }
        }
        let found = (matched != 0).then(|| (self.pattern[matched] as usize, start + matched_after));
        (found, walked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::dfa::StartKind;
    use regex_automata::util::start;
    use regex_automata::Anchored;

    fn anchored_dfa(patterns: &[&str]) -> dense::DFA<Vec<u32>> {
        dense::Builder::new()
            .configure(dense::Config::new().start_kind(StartKind::Anchored))
            .build_many(patterns)
            .unwrap()
    }

    fn start_state(dfa: &dense::DFA<Vec<u32>>, look_behind: Option<u8>) -> StateID {
        let config = start::Config::new()
            .anchored(Anchored::Yes)
            .look_behind(look_behind);
        dfa.start_state(&config).unwrap()
    }

    /// The same walk over regex-automata's own DFA, through its checked API.
    fn reference_walk(
        dfa: &dense::DFA<Vec<u32>>,
        bytes: &[u8],
        start: usize,
        mut state: StateID,
    ) -> (Option<(usize, usize)>, usize) {
        let mut found = None;
        for (offset, &byte) in bytes[start..].iter().enumerate() {
            state = dfa.next_state(state, byte);
            if dfa.is_dead_state(state) {
                return (found, offset + 1);
            }
            if dfa.is_match_state(state) {
                found = Some((dfa.match_pattern(state, 0).as_usize(), start + offset));
            }
        }
        let state = dfa.next_eoi_state(state);
        if dfa.is_match_state(state) {
            found = Some((dfa.match_pattern(state, 0).as_usize(), bytes.len()));
        }
        (found, bytes.len() - start)
    }

    #[test]
    fn walks_agree_with_the_dfa_they_copy() {
        // Word boundaries (start states that depend on the byte before, a match decided only
        // at the end of the text), overlapping patterns in priority order, multi-byte UTF-8.
        let patterns = [
            r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
            r"(?-u:\b)[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?-u:\b)",
            r"\+?[0-9][0-9 -]{6,14}[0-9]",
            r"(?i)token[:=]\s*[a-z0-9]{8,}",
            r"é+x",
        ];
        let dfa = anchored_dfa(&patterns);
        let look_behinds: Vec<Option<u8>> =
            std::iter::once(None).chain((0..=255u8).map(Some)).collect();
        let starts: Vec<StateID> = look_behinds.iter().map(|b| start_state(&dfa, *b)).collect();
        let (table, walk_starts) = WalkTable::new(&dfa, &starts).unwrap();
        let texts = [
            "SSN 123-45-6789 and 10.0.0.1, call +44 20 7946 0018.",
            "123-45-6789",
            "a123-45-6789 9.9.9.9.9 TOKEN= abcdef123 token:short",
            "ééx é x +1 (",
            "",
            "0",
            "1.2.3.4",
        ];
        let mut matches = 0;
        for text in texts {
            let bytes = text.as_bytes();
            for at in 0..bytes.len() {
                let look_behind = at.checked_sub(1).map(|before| bytes[before]);
                let index = look_behinds.iter().position(|b| *b == look_behind).unwrap();
                let expected = reference_walk(&dfa, bytes, at, starts[index]);
                assert_eq!(
                    table.walk(bytes, at, walk_starts[index]),
                    expected,
                    "{text:?} at {at}"
                );
                matches += usize::from(expected.0.is_some());
            }
        }
        // The texts exercise matches of every kind, not only dead ends.
        assert!(matches >= 10, "{matches}");
    }

    #[test]
    fn dead_state_is_zero_and_match_states_come_next() {
        let dfa = anchored_dfa(&[r"[0-9]{2,4}"]);
        let (table, starts) = WalkTable::new(&dfa, &[start_state(&dfa, None)]).unwrap();
        let start = starts[0].state();
        assert!(!table.is_match(start) && !table.is_dead(start));
        let one = table.next_state(start, b'1');
        let two = table.next_state(one, b'2');
        // Matches show one byte late: after two digits the DFA is not yet in a match state.
        let three = table.next_state(two, b'3');
        assert!(table.is_match(three), "{three}");
        assert!(three <= table.last_special && three > 0);
        assert!(table.is_dead(table.next_state(start, b'x')));
        assert_eq!(table.walk(b"12345", 0, starts[0]).0, Some((0, 4)));
        assert_eq!(table.walk(b"12", 0, starts[0]).0, Some((0, 2)));
        assert_eq!(table.walk(b"1x", 0, starts[0]), (None, 2));
    }

    #[test]
    #[should_panic(expected = "a start state of another walk table")]
    fn a_start_of_another_table_is_refused() {
        let small = anchored_dfa(&["ab"]);
        let (small, _) = WalkTable::new(&small, &[start_state(&small, None)]).unwrap();
        // Forty match states come before this table's start state.
        let large = anchored_dfa(&["[0-9]{1,40}"]);
        let (_, large_starts) = WalkTable::new(&large, &[start_state(&large, None)]).unwrap();
        assert!(large_starts[0].state() as usize >= small.pattern.len());
        small.walk(b"ab", 0, large_starts[0]);
    }
}
