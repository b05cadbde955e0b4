//! The staged-sync pipeline: the [`Stage`] abstraction (ids, persisted checkpoints, unwind)
//! and the stages besides state sync: headers and block insertion. The driver
//! ([`crate::driver`]) runs them in order: headers, state at the pivot, bodies and execution,
//! then follows the head block by block; reorgs unwind them in reverse order.

pub mod execute;
pub mod headers;
pub mod stage;

pub use execute::{insert_block, ExecProgress, InsertError, Inserted};
pub use headers::{HeaderChain, HeaderOutcome, HeaderWant, MAX_HEADERS};
pub use stage::{load_checkpoint, save_checkpoint, Checkpoint, Stage, StageId, Unwind};
