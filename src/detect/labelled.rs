//! Labelled synthetic notes (placeholder).
