//! The verifier crate's integration tests: the shared conformance vectors (plain and
//! signed), the documented key pattern and scanner rules, and (with the `tower` feature) the
//! layer in front of a real rmcp server and the routing-header vectors through the layer.

mod key_pattern;
mod scanning;
mod signed;
mod vectors;

#[cfg(feature = "tower")]
mod rmcp;
#[cfg(feature = "tower")]
mod routing;
