//! Losses (placeholder).
