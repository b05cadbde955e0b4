//! The snap/1 state downloader: a sans-IO core ([`Syncer`]) plus its pieces.

pub mod config;
pub mod heal;
pub mod peers;
pub mod progress;
pub mod sched;
pub mod syncer;
pub mod walk;

pub use config::{PlantedBug, SizingPolicy, SyncConfig};
pub use peers::{Kind, PeerId};
pub use syncer::{Action, KindStats, SyncStats, Syncer};
pub use walk::verify_complete;

#[cfg(test)]
mod tests;
