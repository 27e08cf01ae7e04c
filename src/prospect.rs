//! Prospect theory (placeholder).
