//! Tour (placeholder).
