//! The fleet: verifiers shared through a Redis (or Valkey) store, so that every instance of
//! every server refuses a revoked key within a second, whatever machine it runs on.
//! `publish redis://…` writes the store (`store.rs`), `serve --verifier redis://…` and
//! `follow` read it (`follower.rs`); `serve --usage`/`--limits redis://…` share usage
//! counts (`usage.rs`) and rate-limit decisions (`limits.rs`). The store holds only what a verifier file holds,
//! signed by the vault; readers require a trust pin.

pub mod follower;
pub mod limits;
pub mod store;
pub mod usage;
