//! The Merkle-Patricia trie: nodes, building, reading, copy-on-write updates, range proofs.

pub mod batch;
pub mod build;
pub mod db;
pub(crate) mod mem;
pub mod nibbles;
pub mod node;
pub mod range;
pub mod root;
pub mod stitch;
pub mod update;
pub mod walk;

pub use batch::NodeBatch;
pub use db::{MemNodes, NodeSource};
pub use range::{prove_range, verify_range, verify_range_nodes, RangeProofError};
