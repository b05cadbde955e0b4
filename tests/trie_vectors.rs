//! The ethereum/tests TrieTests vectors whose tries have 32-byte keys (the secure variants),
//! checked against `root_from_sorted`.

use alloy_primitives::{hex, keccak256, B256};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use syncsim_node::trie::root::root_from_sorted;

/// Path of a fixture under `shared/fixtures`, next to the crate root or at `/work/shared`.
fn fixture(rel: &str) -> PathBuf {
    let near = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures").join(rel);
    if near.exists() {
        near
    } else {
        Path::new("/work/shared/fixtures").join(rel)
    }
}

/// A TrieTests key or value: `0x…` is hex, anything else is the string's UTF-8 bytes.
fn decode(s: &str) -> Vec<u8> {
    match s.strip_prefix("0x") {
        Some(h) => hex::decode(h).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}")),
        None => s.as_bytes().to_vec(),
    }
}

/// One operation: hashed key and the value to set, `None` (null or empty value) = delete.
fn op(key: &str, value: &Value) -> TrieOp {
    let value = match value {
        Value::Null => None,
        Value::String(s) => Some(decode(s)).filter(|v| !v.is_empty()),
        other => panic!("unexpected value {other}"),
    };
    (keccak256(decode(key)), value)
}

/// One operation: keccak256(key) and the value to set; `None` deletes.
pub type TrieOp = (B256, Option<Vec<u8>>);

/// Every secure-trie case: `(file/case, ordered ops on keccak256(key), expected root)`.
///
/// `trietest_secureTrie.json` has ordered `[key, value]` lists (`null` = delete); the
/// `trieanyorder_secureTrie.json` and `hex_encoded_securetrie_test.json` cases are maps, whose
/// order does not matter (they are given here in key order).
pub fn secure_cases() -> Vec<(String, Vec<TrieOp>, B256)> {
    let files =
        ["trietest_secureTrie.json", "trieanyorder_secureTrie.json", "hex_encoded_securetrie_test.json"];
    let mut out = Vec::new();
    for file in files {
        let path = fixture(&format!("trie-tests/{file}"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let json: Value = serde_json::from_str(&text).unwrap();
        for (name, case) in json.as_object().expect("file is an object of cases") {
            let ops: Vec<_> = match &case["in"] {
                Value::Array(list) => list
                    .iter()
                    .map(|pair| match pair.as_array().map(Vec::as_slice) {
                        Some([Value::String(k), v]) => op(k, v),
                        _ => panic!("{file} {name}: bad op {pair}"),
                    })
                    .collect(),
                Value::Object(map) => map.iter().map(|(k, v)| op(k, v)).collect(),
                other => panic!("{file} {name}: bad `in` {other}"),
            };
            let root = case["root"].as_str().expect("root").parse().expect("32-byte root");
            out.push((format!("{file}/{name}"), ops, root));
        }
    }
    out
}

#[test]
fn secure_trie_vectors() {
    let cases = secure_cases();
    for (name, ops, expected) in &cases {
        let mut trie: BTreeMap<B256, Vec<u8>> = BTreeMap::new();
        for (key, value) in ops {
            match value {
                Some(v) => trie.insert(*key, v.clone()),
                None => trie.remove(key),
            };
        }
        let root = root_from_sorted(trie.iter().map(|(k, v)| (*k, v.as_slice())));
        assert_eq!(root, *expected, "{name}");
    }
    println!("checked {} secure trie cases", cases.len());
    assert_eq!(cases.len(), 13);
}
