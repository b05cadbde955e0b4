//! syncsim-node: the node-side sync code that syncsim tests - state and trie types, range
//! proofs, the snap/1 and block wire codec, the state downloader and the staged sync.

pub mod account;
pub mod codec;
pub mod driver;
pub mod genesis;
pub mod pipeline;
pub mod primitives;
pub mod state;
pub mod store;
pub mod sync;
pub mod trie;
