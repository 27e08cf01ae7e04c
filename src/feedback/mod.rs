//! Binary feedback (placeholder).
