//! The staged-sync pipeline's stages besides state sync: headers and block insertion. The
//! driver ([`crate::driver`]) runs them in order: headers, state at the pivot, bodies and
//! execution, then follows the head block by block; reorgs unwind them.

pub mod execute;
pub mod headers;

pub use execute::{insert_block, ExecProgress, InsertError, Inserted};
pub use headers::{HeaderChain, HeaderOutcome, HeaderWant, MAX_HEADERS};
