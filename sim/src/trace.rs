//! The run's event trace: every send, delivery, drop, timeout, verdict, phase change and
//! block, folded into a running keccak hash (`trace_hash`) and optionally written as JSONL.

use alloy_primitives::{keccak256, B256};
use std::io::Write;

/// Collects events in virtual-time order.
pub struct Trace {
    hash: B256,
    events: u64,
    out: Option<Box<dyn Write>>,
}

impl Trace {
    /// A trace that only hashes, or also writes JSONL to `out`.
    pub fn new(out: Option<Box<dyn Write>>) -> Self {
        Self { hash: B256::ZERO, events: 0, out }
    }

    /// Appends one event: virtual time (µs), kind, peer (if any), free-form detail, and a
    /// digest of the payload bytes.
    pub fn event(&mut self, t_us: u64, kind: &str, peer: Option<u32>, detail: &str, payload: &[u8]) {
        self.events += 1;
        let mut rec = Vec::with_capacity(64 + detail.len());
        rec.extend_from_slice(self.hash.as_slice());
        rec.extend_from_slice(&t_us.to_be_bytes());
        rec.extend_from_slice(kind.as_bytes());
        rec.extend_from_slice(&peer.map_or(u32::MAX, |p| p).to_be_bytes());
        rec.extend_from_slice(detail.as_bytes());
        rec.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        rec.extend_from_slice(&payload[..payload.len().min(48)]);
        if payload.len() > 48 {
            rec.extend_from_slice(&payload[payload.len() - 16..]);
        }
        self.hash = keccak256(&rec);
        if let Some(out) = &mut self.out {
            let line = serde_json::json!({
                "t_ms": t_us as f64 / 1000.0,
                "ev": kind,
                "peer": peer,
                "detail": detail,
                "bytes": payload.len(),
            });
            let _ = writeln!(out, "{line}");
        }
    }

    /// The running hash.
    pub fn hash(&self) -> B256 {
        self.hash
    }

    /// Events recorded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Flushes the JSONL output.
    pub fn flush(&mut self) {
        if let Some(out) = &mut self.out {
            let _ = out.flush();
        }
    }
}
