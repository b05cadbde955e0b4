//! Property tests of the trie: building, copy-on-write updates, iteration, and range proofs
//! (honest proofs verify with the right `has_more`; every tampering is rejected).

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use syncsim_node::primitives::B256;
use syncsim_node::trie::build::build;
use syncsim_node::trie::root::root_from_sorted;
use syncsim_node::trie::update::apply;
use syncsim_node::trie::walk::{get, iter_from, prove};
use syncsim_node::trie::{prove_range, verify_range, MemNodes, RangeProofError};

type Leaves = Vec<(B256, Vec<u8>)>;

/// Random trie: `n` random keys, values of 1..=100 bytes; with `shared`, keys share a long
/// prefix and values are tiny so that nodes are embedded in their parents.
fn random_leaves(rng: &mut ChaCha8Rng, n: usize, shared: bool) -> Leaves {
    let mut map = std::collections::BTreeMap::new();
    let prefix: [u8; 32] = rng.random();
    let keep = rng.random_range(26..31usize);
    while map.len() < n {
        let mut k: [u8; 32] = rng.random();
        if shared {
            k[..keep].copy_from_slice(&prefix[..keep]);
        }
        let len = if shared { rng.random_range(1..=3) } else { rng.random_range(1..=100) };
        let v: Vec<u8> = (0..len).map(|_| rng.random_range(1..=255u8)).collect();
        map.insert(B256::from(k), v);
        if shared && map.len() >= 1usize << (8 * (32 - keep)).min(16) {
            break;
        }
    }
    map.into_iter().collect()
}

fn store(leaves: &Leaves) -> (MemNodes, B256) {
    let mut db = MemNodes::default();
    let root = build(leaves, &mut |n| db.insert_hashed(n.hash, n.rlp));
    (db, root)
}

fn hash_builder_root(leaves: &Leaves) -> B256 {
    root_from_sorted(leaves.iter().map(|(k, v)| (*k, v.as_slice())))
}

/// An honest range: from `origin`, `count` keys, with the server's proof.
struct Range {
    origin: B256,
    keys: Vec<B256>,
    values: Vec<Vec<u8>>,
    proof: Vec<Vec<u8>>,
    has_more: bool,
}

fn honest_range(db: &MemNodes, root: B256, leaves: &Leaves, origin: B256, count: usize) -> Range {
    let start = leaves.partition_point(|(k, _)| *k < origin);
    // a server returns at least one key when any exists at or after the origin
    let count = count.max(1);
    let end = (start + count).min(leaves.len());
    let keys: Vec<B256> = leaves[start..end].iter().map(|(k, _)| *k).collect();
    let values: Vec<Vec<u8>> = leaves[start..end].iter().map(|(_, v)| v.clone()).collect();
    let proof = prove_range(db, root, &origin, keys.last()).unwrap();
    Range { origin, keys, values, proof, has_more: end < leaves.len() }
}

fn pick_origin(rng: &mut ChaCha8Rng, leaves: &Leaves) -> B256 {
    match rng.random_range(0..4) {
        0 => B256::ZERO,
        1 => leaves[rng.random_range(0..leaves.len())].0,
        2 => {
            // just after an existing key
            let mut k = leaves[rng.random_range(0..leaves.len())].0;
            let last = k.0[31];
            k.0[31] = last.wrapping_add(1);
            k
        }
        _ => B256::from(rng.random::<[u8; 32]>()),
    }
}

fn check_trie(seed: u64, n: usize, shared: bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let leaves = random_leaves(&mut rng, n, shared);
    let (db, root) = store(&leaves);
    assert_eq!(root, hash_builder_root(&leaves), "builder root != HashBuilder root");
    // whole-trie claim
    let keys: Vec<B256> = leaves.iter().map(|(k, _)| *k).collect();
    let values: Vec<Vec<u8>> = leaves.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(verify_range::<_, Vec<u8>>(root, &B256::ZERO, &keys, &values, &[]), Ok(false));
    if keys.len() > 1 {
        let skip = rng.random_range(0..keys.len());
        let mut k2 = keys.clone();
        let mut v2 = values.clone();
        k2.remove(skip);
        v2.remove(skip);
        assert!(
            verify_range::<_, Vec<u8>>(root, &B256::ZERO, &k2, &v2, &[]).is_err(),
            "whole-trie claim missing a key"
        );
    }
    // another trie, for the foreign-root tampering
    let other = random_leaves(&mut rng, n.clamp(2, 50), false);
    let (other_db, other_root) = store(&other);

    for _ in 0..12 {
        let origin = pick_origin(&mut rng, &leaves);
        let count = match rng.random_range(0..3) {
            0 => rng.random_range(0..3),
            1 => rng.random_range(0..=leaves.len()),
            _ => rng.random_range(1..=20),
        };
        let r = honest_range(&db, root, &leaves, origin, count);
        let verdict = verify_range(root, &r.origin, &r.keys, &r.values, &r.proof);
        assert_eq!(verdict, Ok(r.has_more), "honest proof: origin {} count {}", r.origin, r.keys.len());
        tamper_all(&mut rng, root, &r, &other_db, other_root);
    }
}

fn rejected(root: B256, origin: &B256, keys: &[B256], values: &[Vec<u8>], proof: &[Vec<u8>], what: &str) {
    let res = verify_range(root, origin, keys, values, proof);
    assert!(res.is_err(), "tampering '{what}' accepted: {res:?}");
}

fn tamper_all(rng: &mut ChaCha8Rng, root: B256, r: &Range, other_db: &MemNodes, other_root: B256) {
    let (o, k, v, p) = (&r.origin, &r.keys, &r.values, &r.proof);
    if !p.is_empty() {
        // node removed
        let mut p2 = p.clone();
        p2.remove(rng.random_range(0..p2.len()));
        if !p2.is_empty() {
            rejected(root, o, k, v, &p2, "node removed");
        }
        // byte flipped
        let mut p3 = p.clone();
        let i = rng.random_range(0..p3.len());
        let j = rng.random_range(0..p3[i].len());
        p3[i][j] ^= 1 << rng.random_range(0..8);
        rejected(root, o, k, v, &p3, "byte flipped");
        // proof for another root
        let foreign = prove(other_db, other_root, o).unwrap();
        rejected(root, o, k, v, &foreign, "proof of another root");
    }
    if k.len() >= 3 {
        let mid = rng.random_range(1..k.len() - 1);
        let (mut k2, mut v2) = (k.clone(), v.clone());
        k2.remove(mid);
        v2.remove(mid);
        rejected(root, o, &k2, &v2, p, "key left out of the middle");
    }
    if k.len() >= 2 {
        // foreign key inserted between two keys
        let mut fk = k[0];
        fk.0[31] ^= 0x01;
        if fk > k[0] && fk < k[1] {
            let (mut k2, mut v2) = (k.clone(), v.clone());
            k2.insert(1, fk);
            v2.insert(1, vec![1, 2, 3]);
            rejected(root, o, &k2, &v2, p, "foreign key added");
        }
        let (mut k2, mut v2) = (k.clone(), v.clone());
        k2.swap(0, 1);
        v2.swap(0, 1);
        rejected(root, o, &k2, &v2, p, "keys reordered");
        let (mut k3, mut v3) = (k.clone(), v.clone());
        k3[1] = k3[0];
        v3[1] = v3[0].clone();
        rejected(root, o, &k3, &v3, p, "key duplicated");
    }
    if !k.is_empty() {
        let i = rng.random_range(0..k.len());
        let mut v2 = v.clone();
        v2[i][0] ^= 0x80;
        rejected(root, o, k, &v2, p, "value altered");
        let mut v3 = v.clone();
        v3[i] = vec![];
        rejected(root, o, k, &v3, p, "empty value");
        let mut after = k[0];
        after.0[31] = after.0[31].wrapping_add(1);
        if after > k[0] {
            rejected(root, &after, k, v, p, "first key after keys[0]");
        }
        // a key beyond the proven right edge appended
        if r.has_more {
            let mut k2 = k.clone();
            let mut v2 = v.clone();
            let mut extra = *k.last().unwrap();
            extra.0[31] = extra.0[31].wrapping_add(1);
            if extra > *k.last().unwrap() {
                k2.push(extra);
                v2.push(vec![7]);
                rejected(root, o, &k2, &v2, p, "key appended past the edge");
            }
        }
    }
}

#[test]
fn small_and_medium_tries() {
    for seed in 0..40 {
        check_trie(seed, 1 + (seed as usize * 37) % 300, false);
    }
}

#[test]
fn embedded_nodes_under_shared_prefixes() {
    for seed in 0..40 {
        check_trie(1000 + seed, 2 + seed as usize % 200, true);
    }
}

#[test]
fn large_tries() {
    for (seed, n) in [(7u64, 5000usize), (8, 4096), (9, 1)] {
        check_trie(seed, n, false);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn prop_honest_and_tampered(seed in any::<u64>(), n in 1usize..5000, shared in any::<bool>()) {
        check_trie(seed, n.min(if shared { 300 } else { 5000 }), shared);
    }

    #[test]
    fn prop_arbitrary_proof_bytes_never_panic(
        seed in any::<u64>(),
        junk in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..6),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let leaves = random_leaves(&mut rng, 30, seed % 2 == 0);
        let (db, root) = store(&leaves);
        let r = honest_range(&db, root, &leaves, pick_origin(&mut rng, &leaves), 5);
        let mut proof = r.proof.clone();
        proof.extend(junk.iter().cloned());
        // honest nodes plus junk: junk is unreferenced, so still valid (bloated)
        prop_assert_eq!(verify_range(root, &r.origin, &r.keys, &r.values, &proof), Ok(r.has_more));
        // junk alone: never panics, never accepted with has_more
        let res = verify_range(root, &r.origin, &r.keys, &r.values, &junk);
        if !junk.is_empty() { prop_assert!(res.is_err() || r.keys.is_empty()); }
    }

    #[test]
    fn prop_updates_match_rebuild(seed in any::<u64>(), n in 0usize..400, ops in 1usize..200) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shared = seed % 3 == 0;
        let mut state: std::collections::BTreeMap<B256, Vec<u8>> =
            random_leaves(&mut rng, n.max(1), shared).into_iter().collect();
        let leaves: Leaves = state.clone().into_iter().collect();
        let (mut db, root0) = store(&leaves);
        let mut root = root0;
        for _ in 0..3 {
            let mut ups: std::collections::BTreeMap<B256, Option<Vec<u8>>> = Default::default();
            let keys: Vec<B256> = state.keys().copied().collect();
            for _ in 0..ops {
                let key = if !keys.is_empty() && rng.random_bool(0.6) {
                    keys[rng.random_range(0..keys.len())]
                } else {
                    let mut k: [u8; 32] = rng.random();
                    if shared { k[..20].copy_from_slice(&keys.first().copied().unwrap_or_default().0[..20]); }
                    B256::from(k)
                };
                let v = if rng.random_bool(0.4) { None } else {
                    Some((0..rng.random_range(1..40)).map(|_| rng.random_range(1..=255u8)).collect())
                };
                ups.insert(key, v);
            }
            for (k, v) in &ups {
                match v { Some(v) => { state.insert(*k, v.clone()); } None => { state.remove(k); } }
            }
            let ups: Vec<_> = ups.into_iter().collect();
            root = apply(&mut db, root, &ups).unwrap();
            let expect: Leaves = state.clone().into_iter().collect();
            prop_assert_eq!(root, hash_builder_root(&expect));
        }
        // the old root is still fully readable (copy-on-write)
        for (k, v) in &leaves {
            prop_assert_eq!(get(&db, root0, k).unwrap(), Some(v.clone()));
        }
        // ordered iteration of the new root from a random start
        let start = B256::from(rng.random::<[u8; 32]>());
        let mut seen = Vec::new();
        iter_from(&db, root, &start, &mut |k, _| { seen.push(k); true }).unwrap();
        let expect: Vec<B256> = state.keys().filter(|k| **k >= start).copied().collect();
        prop_assert_eq!(seen, expect);
    }
}

#[test]
fn geth_edge_cases() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let leaves = random_leaves(&mut rng, 200, false);
    let (db, root) = store(&leaves);
    let last = leaves.last().unwrap().0;
    // zero keys: nothing after the origin (origin past the last key) is fine...
    let mut past = last;
    past.0[31] = past.0[31].wrapping_add(1);
    if past > last {
        let p = prove(&db, root, &past).unwrap();
        assert_eq!(verify_range::<Vec<u8>, _>(root, &past, &[], &[], &p), Ok(false));
    }
    // ...but zero keys with entries to the right is rejected
    let p = prove(&db, root, &B256::ZERO).unwrap();
    assert_eq!(
        verify_range::<Vec<u8>, _>(root, &B256::ZERO, &[], &[], &p),
        Err(RangeProofError::MoreEntries)
    );
    // zero keys and the origin is a key
    let p = prove(&db, root, &last).unwrap();
    assert_eq!(verify_range::<Vec<u8>, _>(root, &last, &[], &[], &p), Err(RangeProofError::MoreEntries));
    // single element range whose key equals the origin, with more to the right
    let (k, v) = &leaves[10];
    let p = prove_range(&db, root, k, Some(k)).unwrap();
    assert_eq!(verify_range(root, k, &[*k], std::slice::from_ref(v), &p), Ok(true));
    // last element: nothing to the right
    let (k, v) = leaves.last().unwrap();
    let p = prove_range(&db, root, k, Some(k)).unwrap();
    assert_eq!(verify_range(root, k, &[*k], std::slice::from_ref(v), &p), Ok(false));
    // a one-leaf trie
    let one = vec![(B256::repeat_byte(5), vec![1u8; 40])];
    let (db1, r1) = store(&one);
    let p = prove(&db1, r1, &B256::ZERO).unwrap();
    assert_eq!(verify_range(r1, &B256::ZERO, &[one[0].0], &[one[0].1.clone()], &p), Ok(false));
    // bloated proof: proofs of every key in the range still verify
    let r = honest_range(&db, root, &leaves, leaves[20].0, 30);
    let mut bloated = r.proof.clone();
    for k in &r.keys {
        bloated.extend(prove(&db, root, k).unwrap());
    }
    assert_eq!(verify_range(root, &r.origin, &r.keys, &r.values, &bloated), Ok(true));
    // a gapped range padded with proofs of every key still fails
    let (mut k2, mut v2) = (r.keys.clone(), r.values.clone());
    k2.remove(5);
    v2.remove(5);
    assert!(verify_range(root, &r.origin, &k2, &v2, &bloated).is_err());
}
