//! edge_cases
