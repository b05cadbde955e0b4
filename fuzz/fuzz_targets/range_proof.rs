//! Fuzz target `range_proof`: the range-proof verifier against hostile replies.
//!
//! The first byte picks a mode.
//!
//! **Trie mode** (even first byte). The fuzzer bytes describe a small trie (0..=24 leaves; keys
//! that share prefixes or use a few nibble values, short values so that nodes get embedded in
//! their parents), which is built with `trie::build::build` into a node store; its root must
//! equal alloy-trie's (`root_from_sorted`). A range is cut from it (origin: zero, a leaf key, a
//! key next to one, or arbitrary; then up to N leaves) and proved with `prove_range` (or, for
//! the whole trie from zero, sent without proof). Further bytes then mutate the reply: keys,
//! values, the origin and the proof nodes (drop, flip, truncate, duplicate, reorder, add raw
//! bytes or unrelated genuine nodes). The oracle knows the trie, so it asserts:
//! - `verify_range` never panics;
//! - an honest reply (nothing changed, or only changes that geth's semantics ignore: proof order,
//!   duplicate or unreferenced proof nodes) verifies: `Ok(has_more)` with the true has_more;
//! - soundness: whenever `verify_range` returns `Ok(has_more)`, the reply really is the trie's
//!   content (with a proof: exactly the leaves in `first_key..=last key`, none before the first key
//!   left out; without a proof: the whole trie) and has_more is true iff the trie holds a key past
//!   the last one. So every altered reply that is no longer true must be an `Err` (an `Err`
//!   carries no has_more, so "an error never comes with has_more = true" holds by type).
//!
//! **Raw mode** (odd first byte). The bytes become proof nodes (length-prefixed chunks), keys,
//! values and an origin; the root is keccak of the first node (so the verifier really decodes
//! fuzzer bytes as trie nodes) or of a later one. Asserted: no panic, and the result does not
//! depend on the order of the proof nodes.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use syncsim_node::primitives::{keccak256, B256};
use syncsim_node::trie::build::build;
use syncsim_node::trie::root::root_from_sorted;
use syncsim_node::trie::{prove_range, verify_range, MemNodes};

type Leaves = Vec<(B256, Vec<u8>)>;

fn key_from(u: &mut Unstructured<'_>, base: &B256, prefix: usize, mask: u8) -> Result<B256> {
    let mut k = *base;
    for b in k.0.iter_mut().skip(prefix) {
        *b = u.arbitrary::<u8>()? & mask;
    }
    Ok(k)
}

fn value_from(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let len = *u.choose(&[1usize, 1, 2, 3, 5, 8, 20, 31, 33, 40])?;
    let mut v = u.bytes(len.min(u.len()))?.to_vec();
    v.resize(len, 0xaa);
    Ok(v)
}

fn next_key(k: &B256) -> B256 {
    let mut out = *k;
    for b in out.0.iter_mut().rev() {
        let (n, carry) = b.overflowing_add(1);
        *b = n;
        if !carry {
            break;
        }
    }
    out
}

/// The oracle: is `(first_key, keys, values)` with (`with_proof`) or without a proof a true
/// claim about `leaves`, and what must has_more be?
fn truth(leaves: &Leaves, first: &B256, keys: &[B256], values: &[Vec<u8>], with_proof: bool) -> Option<bool> {
    if keys.len() != values.len() {
        return None;
    }
    if !with_proof {
        let same = leaves.len() == keys.len()
            && leaves.iter().zip(keys.iter().zip(values)).all(|((lk, lv), (k, v))| lk == k && lv == v);
        return same.then_some(false);
    }
    let Some(last) = keys.last() else {
        return leaves.iter().all(|(k, _)| k < first).then_some(false);
    };
    if first > &keys[0] {
        return None;
    }
    let inside: Vec<_> = leaves.iter().filter(|(k, _)| k >= first && k <= last).collect();
    let same = inside.len() == keys.len()
        && inside.iter().zip(keys.iter().zip(values)).all(|((lk, lv), (k, v))| lk == k && lv == v);
    same.then(|| leaves.iter().any(|(k, _)| k > last))
}

/// Replaying an input with FUZZ_SHOW=1: print the `verify_range` call as a `syncsim
/// verify-range` case (JSON).
fn show(what: &str, root: B256, first: &B256, keys: &[B256], values: &[Vec<u8>], proof: &[Vec<u8>]) {
    let hex = |b: &[u8]| format!("\"0x{}\"", b.iter().map(|x| format!("{x:02x}")).collect::<String>());
    let list = |items: Vec<String>| items.join(",");
    eprintln!(
        "--- {what}: verify-range case ---\n{{\"root\":{},\"first_key\":{},\"keys\":[{}],\"values\":[{}],\"proof\":[{}]}}",
        hex(root.as_slice()),
        hex(first.as_slice()),
        list(keys.iter().map(|k| hex(k.as_slice())).collect()),
        list(values.iter().map(|v| hex(v)).collect()),
        list(proof.iter().map(|p| hex(p)).collect()),
    );
}

fn trie_mode(u: &mut Unstructured<'_>) -> Result<()> {
    // ---- the trie
    let n = u.int_in_range(0..=24usize)?;
    let base = B256::from(u.arbitrary::<[u8; 32]>()?);
    let prefix = u.int_in_range(0..=31usize)?;
    let mask = *u.choose(&[0xffu8, 0x0f, 0xf0, 0x03, 0x11, 0x81])?;
    let mut map = std::collections::BTreeMap::new();
    for _ in 0..n {
        let k = key_from(u, &base, prefix, mask)?;
        let v = value_from(u)?;
        map.insert(k, v);
    }
    let leaves: Leaves = map.into_iter().collect();
    let mut db = MemNodes::default();
    let root = build(&leaves, &mut |node| {
        db.insert_hashed(node.hash, node.rlp);
    });
    let reference = root_from_sorted(leaves.iter().map(|(k, v)| (*k, v.as_slice())));
    assert_eq!(root, reference, "build() root differs from alloy-trie's HashBuilder root");

    // ---- an honest range
    let origin = match u.int_in_range(0..=4u8)? {
        0 => B256::ZERO,
        1 if !leaves.is_empty() => leaves[u.choose_index(leaves.len())?].0,
        2 if !leaves.is_empty() => next_key(&leaves[u.choose_index(leaves.len())?].0),
        3 => key_from(u, &base, prefix, mask)?,
        _ => B256::from(u.arbitrary::<[u8; 32]>()?),
    };
    let start = leaves.partition_point(|(k, _)| *k < origin);
    // mostly at least one key when keys follow the origin (zero keys then is a false reply)
    let take = if start < leaves.len() && u.ratio(7, 8)? {
        u.int_in_range(1..=leaves.len() - start)?
    } else {
        u.int_in_range(0..=leaves.len() - start)?
    };
    let mut keys: Vec<B256> = leaves[start..start + take].iter().map(|(k, _)| *k).collect();
    let mut values: Vec<Vec<u8>> = leaves[start..start + take].iter().map(|(_, v)| v.clone()).collect();
    let whole = origin == B256::ZERO && take == leaves.len();
    let mut proof: Vec<Vec<u8>> = if leaves.is_empty() || (whole && u.arbitrary::<bool>()?) {
        Vec::new() // no proof: the leaves are the whole trie
    } else {
        prove_range(&db, root, &origin, keys.last())
            .unwrap_or_else(|e| panic!("prove_range failed on a well-formed trie: {e:?}"))
    };
    // every true reply (a proof of a range that misses nothing, or the whole trie without proof)
    // must verify with the true has_more
    if let Some(hm) = truth(&leaves, &origin, &keys, &values, !proof.is_empty()) {
        assert_eq!(verify_range(root, &origin, &keys, &values, &proof), Ok(hm), "honest range rejected");
    }

    // ---- mutations
    let mut first = origin;
    let mut changed = false; // anything that may change the truth of the claim
    let rounds = u.int_in_range(0..=4u8)?;
    for _ in 0..rounds {
        // (keys and values may differ in length after a mutation: index both with care)
        match u.int_in_range(0..=15u8)? {
            0 if !keys.is_empty() => {
                let i = u.choose_index(keys.len())?;
                let bit = u.int_in_range(0..=255u8)?;
                keys[i].0[bit as usize / 8] ^= 1 << (bit % 8);
                changed = true;
            }
            1 if !keys.is_empty() => {
                let i = u.choose_index(keys.len())?;
                keys.remove(i);
                if i < values.len() {
                    values.remove(i);
                }
                changed = true;
            }
            2 => {
                let i = u.int_in_range(0..=keys.len())?;
                keys.insert(i, key_from(u, &base, prefix, mask)?);
                values.insert(i.min(values.len()), value_from(u)?);
                changed = true;
            }
            3 if !values.is_empty() => {
                let i = u.choose_index(values.len())?;
                let v = &mut values[i];
                match u.int_in_range(0..=3u8)? {
                    0 => v.clear(),
                    1 => v.push(u.arbitrary()?),
                    2 if !v.is_empty() => {
                        let j = u.choose_index(v.len())?;
                        v[j] ^= u.int_in_range(1..=255u8)?;
                    }
                    _ => v.truncate(u.choose_index(v.len().max(1))?),
                }
                changed = true;
            }
            4 if !values.is_empty() => {
                // length mismatch
                values.pop();
                changed = true;
            }
            5 if keys.len() >= 2 => {
                let i = u.choose_index(keys.len())?;
                let j = u.choose_index(keys.len())?;
                keys.swap(i, j);
                changed = true;
            }
            6 if !keys.is_empty() => {
                // duplicate a key/value pair
                let i = u.choose_index(keys.len())?;
                keys.insert(i, keys[i]);
                if let Some(v) = values.get(i).cloned() {
                    values.insert(i, v);
                }
                changed = true;
            }
            7 => {
                first = match u.int_in_range(0..=2u8)? {
                    0 => B256::ZERO,
                    1 => key_from(u, &base, prefix, mask)?,
                    _ => B256::from(u.arbitrary::<[u8; 32]>()?),
                };
                changed = true;
            }
            8 if !proof.is_empty() => {
                let i = u.choose_index(proof.len())?;
                proof.remove(i);
                changed = true;
            }
            9 if !proof.is_empty() => {
                let i = u.choose_index(proof.len())?;
                let node = &mut proof[i];
                if !node.is_empty() {
                    let j = u.choose_index(node.len())?;
                    node[j] ^= u.int_in_range(1..=255u8)?;
                }
                changed = true;
            }
            10 if !proof.is_empty() => {
                let i = u.choose_index(proof.len())?;
                let len = proof[i].len();
                let keep = u.int_in_range(0..=len)?;
                proof[i].truncate(keep);
                changed = true;
            }
            11 if !proof.is_empty() => {
                // neutral: order is irrelevant
                let i = u.choose_index(proof.len())?;
                let j = u.choose_index(proof.len())?;
                proof.swap(i, j);
            }
            12 if !proof.is_empty() => {
                // neutral: duplicates are ignored
                let i = u.choose_index(proof.len())?;
                proof.push(proof[i].clone());
            }
            13 if !proof.is_empty() => {
                // neutral (unless it hashes to a referenced node, which raw bytes cannot):
                // unreferenced raw bytes
                let len = u.int_in_range(0..=80usize)?;
                proof.push(u.bytes(len.min(u.len()))?.to_vec());
            }
            14 if !proof.is_empty() => {
                // neutral: a genuine node of the trie (bloated proof) - the proof of some key
                let k = key_from(u, &base, prefix, mask)?;
                if let Ok(extra) = prove_range(&db, root, &k, None) {
                    proof.extend(extra);
                }
            }
            15 if !proof.is_empty() => {
                // take all proof away: now the reply claims to be the whole trie
                proof.clear();
                changed = true;
            }
            _ => {}
        }
    }

    if std::env::var_os("FUZZ_SHOW").is_some() {
        show("trie mode, after mutations", root, &first, &keys, &values, &proof);
        eprintln!("trie leaves: {leaves:?}");
    }
    let got = verify_range(root, &first, &keys, &values, &proof);
    let want = truth(&leaves, &first, &keys, &values, !proof.is_empty());
    if let Ok(hm) = got {
        assert_eq!(
            want,
            Some(hm),
            "verify_range accepted a false reply (or with the wrong has_more)\nfirst {first}\nkeys {keys:?}\nvalues {values:?}\nproof {} nodes\nleaves {leaves:?}",
            proof.len()
        );
    }
    if !changed {
        if let Some(hm) = want {
            // nothing but neutral changes to a true reply
            assert_eq!(
                got,
                Ok(hm),
                "true reply rejected after neutral changes (proof order/duplicates/extras)"
            );
        }
    }
    Ok(())
}

fn raw_mode(u: &mut Unstructured<'_>) -> Result<()> {
    let nodes = u.int_in_range(1..=8usize)?;
    let mut proof = Vec::with_capacity(nodes);
    for _ in 0..nodes {
        let len = u.int_in_range(0..=600usize)?;
        proof.push(u.bytes(len.min(u.len()))?.to_vec());
    }
    let root = match u.int_in_range(0..=2u8)? {
        0 => keccak256(&proof[0]),
        1 => keccak256(&proof[u.choose_index(proof.len())?]),
        _ => B256::from(u.arbitrary::<[u8; 32]>()?),
    };
    let first = B256::from(u.arbitrary::<[u8; 32]>()?);
    let count = u.int_in_range(0..=4usize)?;
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for _ in 0..count {
        keys.push(B256::from(u.arbitrary::<[u8; 32]>()?));
        values.push(value_from(u)?);
    }
    if u.arbitrary::<bool>()? {
        keys.sort();
        keys.dedup();
        values.truncate(keys.len());
    }
    if std::env::var_os("FUZZ_SHOW").is_some() {
        show("raw mode", root, &first, &keys, &values, &proof);
    }
    let got = verify_range(root, &first, &keys, &values, &proof);
    let mut reversed = proof.clone();
    reversed.reverse();
    let again = verify_range(root, &first, &keys, &values, &reversed);
    assert_eq!(got, again, "verify_range depends on the order of the proof nodes");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut u = Unstructured::new(rest);
    let _ = if mode & 1 == 0 { trie_mode(&mut u) } else { raw_mode(&mut u) };
});
