//! syncsim: a deterministic simulator that runs the real snap/1 downloader of `syncsim-node`
//! against virtual peers over a faulty virtual network, and checks it against an oracle.

pub mod chain;
pub mod cli;
pub mod fuzz;
pub mod net;
pub mod peer;
pub mod plot;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sweep;
pub mod timeline;
pub mod trace;
pub mod units;
pub mod view;
