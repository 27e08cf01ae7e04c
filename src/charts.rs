//! Charts (placeholder, filled by the charts work).
