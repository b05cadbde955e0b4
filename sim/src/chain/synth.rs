//! Synthetic start states: the `[state]` synthetic keys of a scenario turned into a [`State`].
//!
//! Everything is drawn from one `ChaCha8Rng` seeded with the given seed, in a fixed order, so
//! equal specs and seeds give equal states. Keys are generated in bulk, sorted and turned into
//! `BTreeMap`s from sorted vectors, which keeps a million accounts within a few seconds.

use alloy_primitives::{keccak256, Bytes, B256, U256};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use syncsim_node::primitives::EMPTY_CODE;
use syncsim_node::state::{AccountData, State};

/// The synthetic `[state]` keys of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Number of accounts.
    pub accounts: u64,
    /// How many of them have code and storage (clamped to `accounts`).
    pub contracts: u64,
    /// Total storage slots over all contracts (ignored when there are no contracts).
    pub storage_slots: u64,
    /// Zipf exponent of the slot distribution over contracts: 0 = even, 1.1 = a few huge ones.
    pub storage_skew: f64,
    /// Code size range in bytes, inclusive (a minimum of 0 is raised to 1: code is never empty).
    pub code_size: (u64, u64),
    /// Distinct codes shared among the contracts (at least 1 when there are contracts).
    pub unique_codes: u64,
    /// Put account keys exactly on the edges of the hash space's 16 equal chunks (see
    /// [`boundary_keys`]).
    pub boundary_keys: bool,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            accounts: 10_000,
            contracts: 200,
            storage_slots: 100_000,
            storage_skew: 1.1,
            code_size: (100, 24 * 1024),
            unique_codes: 50,
            boundary_keys: false,
        }
    }
}

/// A uniformly random 32-byte key.
pub(crate) fn random_key(rng: &mut ChaCha8Rng) -> B256 {
    B256::from(rng.random::<[u8; 32]>())
}

/// A non-zero storage value: half small integers (1..=1000), half full 32-byte values.
pub(crate) fn random_slot_value(rng: &mut ChaCha8Rng) -> U256 {
    if rng.random_bool(0.5) {
        U256::from(rng.random_range(1u64..=1000))
    } else {
        let v = U256::from_be_bytes(rng.random::<[u8; 32]>());
        if v.is_zero() {
            U256::from(1u64)
        } else {
            v
        }
    }
}

/// A random balance: some zero, some small, some large.
pub(crate) fn random_balance(rng: &mut ChaCha8Rng) -> U256 {
    match rng.random_range(0u8..10) {
        0 => U256::ZERO,
        1..=5 => U256::from(rng.random::<u64>()),
        _ => U256::from(rng.random::<u128>()),
    }
}

/// Random code of a size drawn uniformly from `size` (inclusive, minimum 1 byte).
pub(crate) fn random_code(rng: &mut ChaCha8Rng, size: (u64, u64)) -> Bytes {
    let lo = size.0.min(size.1).max(1);
    let hi = size.0.max(size.1).max(lo);
    let len = rng.random_range(lo..=hi) as usize;
    let mut code = vec![0u8; len];
    rng.fill(&mut code[..]);
    Bytes::from(code)
}

/// `n` distinct random keys, sorted.
/// The 48 keys on the edges of the hash space's 16 equal chunks: each chunk's first key, its
/// last, and the one before its last.
pub fn boundary_keys() -> Vec<B256> {
    let mut out = Vec::with_capacity(48);
    for chunk in 0u8..16 {
        let mut first = [0u8; 32];
        first[0] = chunk << 4;
        let mut last = [0xffu8; 32];
        last[0] = (chunk << 4) | 0x0f;
        let mut near = last;
        near[31] = 0xfe;
        out.extend([B256::from(first), B256::from(near), B256::from(last)]);
    }
    out
}

/// `n` sorted distinct keys, as many of them chunk-edge keys ([`boundary_keys`]) as fit.
fn with_boundary_keys(rng: &mut ChaCha8Rng, n: usize) -> Vec<B256> {
    let edges = boundary_keys();
    let take = edges.len().min(n);
    let mut keys: Vec<B256> = edges[..take].to_vec();
    let mut rest = sorted_random_keys(rng, n - take);
    keys.append(&mut rest);
    keys.sort_unstable();
    keys.dedup();
    while keys.len() < n {
        keys.push(random_key(rng));
        keys.sort_unstable();
        keys.dedup();
    }
    keys
}

pub(crate) fn sorted_random_keys(rng: &mut ChaCha8Rng, n: usize) -> Vec<B256> {
    let mut keys: Vec<B256> = (0..n).map(|_| random_key(rng)).collect();
    keys.sort_unstable();
    keys.dedup();
    // Collisions of 256-bit random keys do not happen in practice; stay exact if they do.
    while keys.len() < n {
        let missing = n - keys.len();
        keys.extend((0..missing).map(|_| random_key(rng)));
        keys.sort_unstable();
        keys.dedup();
    }
    keys
}

/// Splits `total` into `parts` counts following a zipf law with exponent `skew` over the
/// ranks (rank 0 largest). When `total >= parts` every part gets at least one. The counts sum
/// to `total` exactly (largest remainder rounding, ties to the lower rank).
pub fn zipf_counts(total: u64, parts: usize, skew: f64) -> Vec<u64> {
    if parts == 0 {
        return Vec::new();
    }
    let base = u64::from(total >= parts as u64);
    let rest = total - base * parts as u64;
    let skew = if skew.is_finite() && skew > 0.0 { skew } else { 0.0 };
    let weights: Vec<f64> = (0..parts).map(|r| ((r + 1) as f64).powf(-skew)).collect();
    let sum: f64 = weights.iter().sum();
    let mut counts = Vec::with_capacity(parts);
    let mut fracs = Vec::with_capacity(parts);
    let mut assigned = 0u64;
    for (r, w) in weights.iter().enumerate() {
        let exact = rest as f64 * w / sum;
        let floor = (exact.floor() as u64).min(rest - assigned);
        assigned += floor;
        counts.push(base + floor);
        fracs.push((exact - floor as f64, r));
    }
    let mut left = rest - assigned;
    fracs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut i = 0;
    while left > 0 {
        counts[fracs[i % parts].1] += 1;
        left -= 1;
        i += 1;
    }
    counts
}

/// Generates the synthetic state described by `spec`, deterministically from `seed`.
///
/// Accounts get random hashed keys, nonces and balances. `contracts` of them (chosen at
/// random) get code - contract of rank `r` uses code `r % unique_codes` of a pool of random
/// codes - and storage: `storage_slots` slots spread over the contracts by a zipf law with
/// exponent `storage_skew`, over a random ranking of the contracts.
pub fn synthetic_state(spec: &SyntheticSpec, seed: u64) -> State {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = spec.accounts as usize;
    let contracts = spec.contracts.min(spec.accounts) as usize;

    let keys =
        if spec.boundary_keys { with_boundary_keys(&mut rng, n) } else { sorted_random_keys(&mut rng, n) };
    let mut accounts: Vec<AccountData> = (0..n)
        .map(|_| {
            let nonce = if rng.random_bool(0.3) { 0 } else { rng.random_range(1u64..=1000) };
            AccountData::plain(nonce, random_balance(&mut rng))
        })
        .collect();

    // Which accounts are contracts, in rank order: a partial Fisher-Yates shuffle.
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in 0..contracts {
        let j = rng.random_range(i..n);
        order.swap(i, j);
    }
    order.truncate(contracts);

    let mut state = State::default();
    let code_count = if contracts == 0 { 0 } else { (spec.unique_codes.max(1) as usize).min(contracts) };
    let code_hashes: Vec<B256> = (0..code_count)
        .map(|_| {
            let code = random_code(&mut rng, spec.code_size);
            let hash = keccak256(&code);
            state.codes.insert(hash, code);
            hash
        })
        .collect();

    let slots = if contracts == 0 { 0 } else { spec.storage_slots };
    let counts = zipf_counts(slots, contracts, spec.storage_skew);
    for (rank, (&idx, &count)) in order.iter().zip(&counts).enumerate() {
        let account = &mut accounts[idx as usize];
        account.nonce = 1;
        account.code_hash = code_hashes[rank % code_count];
        let slot_keys = sorted_random_keys(&mut rng, count as usize);
        let values: Vec<(B256, U256)> =
            slot_keys.into_iter().map(|k| (k, random_slot_value(&mut rng))).collect();
        account.storage = BTreeMap::from_iter(values);
    }
    debug_assert!(accounts.iter().all(|a| a.storage.is_empty() || a.code_hash != EMPTY_CODE));

    state.accounts = BTreeMap::from_iter(keys.into_iter().zip(accounts));
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SyntheticSpec {
        SyntheticSpec {
            accounts: 5_000,
            contracts: 300,
            storage_slots: 40_000,
            storage_skew: 0.0,
            code_size: (10, 500),
            unique_codes: 40,
            boundary_keys: false,
        }
    }

    #[test]
    fn counts_match_the_spec() {
        let s = synthetic_state(&spec(), 1);
        let stats = s.stats();
        assert_eq!(stats.accounts, 5_000);
        assert_eq!(stats.contracts, 300);
        assert_eq!(stats.storage_slots, 40_000);
        assert_eq!(s.codes.len(), 40);
        for a in s.accounts.values() {
            assert_eq!(a.code_hash == EMPTY_CODE, a.storage.is_empty());
            assert!(a.storage.values().all(|v| !v.is_zero()));
            if a.code_hash != EMPTY_CODE {
                let code = &s.codes[&a.code_hash];
                assert!((10..=500).contains(&code.len()));
            }
        }
        // Values mix small and full-width numbers.
        let values: Vec<U256> = s.accounts.values().flat_map(|a| a.storage.values().copied()).collect();
        let small = values.iter().filter(|v| **v <= U256::from(1000u64)).count();
        assert!(small > values.len() / 3 && small < values.len() * 2 / 3, "{small} of {}", values.len());
        // Even spread with skew 0.
        let per: Vec<usize> = s.accounts.values().map(|a| a.storage.len()).filter(|l| *l > 0).collect();
        assert!(per.iter().all(|l| (133..=134).contains(l)), "{per:?}");
    }

    #[test]
    fn deterministic_per_seed() {
        let a = synthetic_state(&spec(), 7);
        let b = synthetic_state(&spec(), 7);
        assert_eq!(a, b);
        assert_eq!(a.root(), b.root());
        let c = synthetic_state(&spec(), 8);
        assert_ne!(a, c);
        assert_ne!(a.root(), c.root());
    }

    #[test]
    fn skew_concentrates_slots() {
        let spec = SyntheticSpec { contracts: 1_000, storage_slots: 100_000, storage_skew: 1.1, ..spec() };
        let s = synthetic_state(&spec, 3);
        let mut per: Vec<u64> =
            s.accounts.values().map(|a| a.storage.len() as u64).filter(|l| *l > 0).collect();
        assert_eq!(per.len(), 1_000);
        assert_eq!(per.iter().sum::<u64>(), 100_000);
        per.sort_unstable_by(|a, b| b.cmp(a));
        let top10: u64 = per[..10].iter().sum();
        assert!(top10 > 40_000, "top 10 contracts hold {top10}");
        assert!(per[0] > 10_000, "largest {}", per[0]);
    }

    #[test]
    fn zipf_counts_are_exact() {
        for (total, parts, skew) in
            [(0, 3, 1.0), (2, 5, 1.1), (10, 10, 0.0), (1000, 7, 2.0), (12345, 100, 0.7)]
        {
            let c = zipf_counts(total, parts, skew);
            assert_eq!(c.len(), parts);
            assert_eq!(c.iter().sum::<u64>(), total);
            assert!(c.windows(2).all(|w| w[0] >= w[1]), "{c:?}");
        }
        assert!(zipf_counts(5, 0, 1.0).is_empty());
    }

    #[test]
    fn degenerate_specs() {
        let s = synthetic_state(&SyntheticSpec { accounts: 0, ..spec() }, 1);
        assert!(s.accounts.is_empty() && s.codes.is_empty());
        let s = synthetic_state(&SyntheticSpec { contracts: 0, ..spec() }, 1);
        assert_eq!(s.stats().storage_slots, 0);
        let s = synthetic_state(
            &SyntheticSpec { accounts: 10, contracts: 50, unique_codes: 0, code_size: (0, 0), ..spec() },
            1,
        );
        assert_eq!(s.stats().contracts, 10);
        assert_eq!(s.codes.len(), 1);
    }
}
