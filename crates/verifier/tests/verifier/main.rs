//! The verifier crate's integration tests: the shared conformance vectors (plain and
//! signed), and (with the `tower` feature) the layer in front of a real rmcp server.

mod signed;
mod vectors;

#[cfg(feature = "tower")]
mod rmcp;
