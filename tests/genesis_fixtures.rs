//! Genesis loading against real network allocations and ethereum/tests fixtures, with the roots
//! published in `shared/fixtures/README.md`, plus malformed-input cases.

use alloy_primitives::{b256, hex, keccak256, B256};
use serde_json::Value;
use std::path::{Path, PathBuf};
use syncsim_node::genesis::{load_genesis, parse_alloc_value, parse_genesis, GenesisError};
use syncsim_node::primitives::EMPTY_ROOT;
use syncsim_node::state::{AccountData, State};

const MAINNET_ROOT: B256 = b256!("d7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544");
const MAINNET_ROOT_WITHOUT_EMPTY: B256 =
    b256!("8321024fe38f978157c82a84a55596d490258f9e8c192b2abd37039044ca8bce");
const SEPOLIA_ROOT: B256 = b256!("5eb6e371a698b8d68f665192350ffcecbbbf322916f4b51bd79bb6887da3f494");
const HOLESKY_ROOT: B256 = b256!("69d8c9d72f6fa4ad42d4702b433707212f90db395eb54dc20bc85de253788783");
const HOODI_ROOT: B256 = b256!("da87d7f5f91c51508791bbcbd4aa5baf04917830b86985eeb9ad3d5bfb657576");
const BASIC_TEST1_ROOT: B256 = b256!("dd406a973a0a5a9826d00da276e996d28426d24f12b8fa683723e9db532b8c59");
const BASIC_TEST2_ROOT: B256 = b256!("9178d0f23c965d81f0834a4c72c6253ce6830f4022b1359aaebfc1ecba442d4e");
const BASIC_TEST3_ROOT: B256 = EMPTY_ROOT;

/// The two empty mainnet accounts that are nonetheless trie leaves.
const MAINNET_EMPTY_ACCOUNTS: [&str; 2] =
    ["00c40fe2095423509b9fd9b754323158af2310f3", "5ed3f1ebe2ae6756b5d8dc19cad02c419aa5778b"];

/// Path of a fixture under `shared/fixtures`, next to the crate root or at `/work/shared`.
fn fixture(rel: &str) -> PathBuf {
    let near = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures").join(rel);
    if near.exists() {
        near
    } else {
        Path::new("/work/shared/fixtures").join(rel)
    }
}

fn read_json(rel: &str) -> Value {
    let text = std::fs::read_to_string(fixture(rel)).expect("read fixture");
    serde_json::from_str(&text).expect("fixture is valid JSON")
}

/// Loads a single-genesis file and returns its only state.
fn load_single(rel: &str) -> State {
    let mut entries = load_genesis(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(entries.len(), 1, "{rel}: one genesis");
    let (name, state) = entries.remove(0);
    assert_eq!(name, None);
    state
}

/// Checks root and the README's accounts / with code / storage slots counts.
fn check(label: &str, state: &State, root: B256, accounts: u64, contracts: u64, slots: u64) {
    let stats = state.stats();
    assert_eq!(
        (stats.accounts, stats.contracts, stats.storage_slots),
        (accounts, contracts, slots),
        "{label}: accounts / contracts / slots"
    );
    assert_eq!(state.root(), root, "{label}: state root");
}

fn b256_field(v: &Value) -> B256 {
    v.as_str().expect("hash string").parse().expect("32-byte hash")
}

#[test]
fn mainnet() {
    let state = load_single("genesis/mainnet.json");
    check("mainnet", &state, MAINNET_ROOT, 8_893, 0, 0);
    // The file's own `stateRoot` and ethereum/tests' genesishashestest agree with the constant.
    assert_eq!(b256_field(&read_json("genesis/mainnet.json")["stateRoot"]), MAINNET_ROOT);
    let hashes = read_json("genesis/mainnet-genesishashestest.json");
    assert_eq!(b256_field(&hashes["genesis_state_root"]), MAINNET_ROOT);
    // The empty accounts are present as all-default leaves.
    for addr in MAINNET_EMPTY_ACCOUNTS {
        let key = keccak256(hex::decode(addr).unwrap());
        let account = state.accounts.get(&key).expect("empty account kept");
        assert_eq!(*account, AccountData::plain(0, Default::default()));
    }
}

#[test]
fn mainnet_without_empty_accounts_has_the_wrong_root() {
    let mut genesis = read_json("genesis/mainnet.json");
    let alloc = genesis["alloc"].as_object_mut().unwrap();
    for addr in MAINNET_EMPTY_ACCOUNTS {
        assert!(alloc.remove(addr).is_some(), "{addr} in mainnet alloc");
    }
    let state = parse_alloc_value(&genesis["alloc"]).unwrap();
    check("mainnet minus empty", &state, MAINNET_ROOT_WITHOUT_EMPTY, 8_891, 0, 0);
}

#[test]
fn sepolia() {
    check("sepolia", &load_single("genesis/sepolia-genesis.json"), SEPOLIA_ROOT, 15, 0, 0);
}

#[test]
fn holesky() {
    let state = load_single("genesis/holesky-genesis.json");
    check("holesky", &state, HOLESKY_ROOT, 317, 1, 31);
    // The deposit contract holds all the code: 6,358 bytes.
    assert_eq!(state.stats().code_bytes, 6_358);
}

#[test]
fn hoodi() {
    let state = load_single("genesis/hoodi-genesis.json");
    check("hoodi", &state, HOODI_ROOT, 335, 5, 33);
    // EIP-7002 / EIP-7251 contracts: nonce 1, one slot each.
    for addr in ["00000961Ef480Eb55e80D19ad83579A64c007002", "0000BBdDc7CE488642fb579F8B00f3a590007251"] {
        let account = &state.accounts[&keccak256(hex::decode(addr).unwrap())];
        assert_eq!((account.nonce, account.storage.len()), (1, 1), "{addr}");
    }
}

/// The `stateRoot` (4th header field) of the block RLP in a basic_genesis_tests `result`.
fn state_root_of_block_rlp(block_hex: &str) -> B256 {
    use alloy_rlp::Header;
    let bytes = hex::decode(block_hex).expect("result is hex");
    let mut buf = bytes.as_slice();
    assert!(Header::decode(&mut buf).unwrap().list, "block is a list");
    assert!(Header::decode(&mut buf).unwrap().list, "header is a list");
    for _ in 0..3 {
        let h = Header::decode(&mut buf).unwrap();
        buf = &buf[h.payload_length..];
    }
    let h = Header::decode(&mut buf).unwrap();
    assert_eq!(h.payload_length, 32);
    B256::from_slice(&buf[..32])
}

#[test]
fn basic_genesis_tests() {
    let entries = load_genesis(&fixture("genesis/basic_genesis_tests.json")).unwrap();
    let names: Vec<_> = entries.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(names, ["test1", "test2", "test3"], "one entry per case, sorted");
    let expected = [(BASIC_TEST1_ROOT, 2, 1, 1), (BASIC_TEST2_ROOT, 12, 0, 0), (BASIC_TEST3_ROOT, 0, 0, 0)];
    let file = read_json("genesis/basic_genesis_tests.json");
    for ((name, state), (root, accounts, contracts, slots)) in entries.iter().zip(expected) {
        let name = name.as_deref().unwrap();
        check(name, state, root, accounts, contracts, slots);
        // The constant is the one inside the case's `result` block.
        let result = file[name]["result"].as_str().unwrap();
        assert_eq!(state_root_of_block_rlp(result), root, "{name}: result header");
    }
}

#[test]
fn blockchain_test_states() {
    // (file, pre root, pre counts, postState root, postState counts)
    let cases = [
        (
            "blockchain-tests/shiftCombinations.json",
            b256!("45bf6fcbadd9a0f2a280b2d129791d686c2084aa2a617b332df357967e1b888c"),
            (3, 2, 0),
            b256!("6df7e862fea8bea129db2d3306e834877d43cf345071f5fd723b5c1d15f621b8"),
            (3, 2, 1_971),
        ),
        (
            "blockchain-tests/block504980.json",
            b256!("3ea38d9d4157ba037e01abd09e1ad00e092e7dc9844f1f5e9d2e637de50f7dc1"),
            (15, 8, 104),
            b256!("33a68848bb8ea7ef76eaac2b4b273f3159b5f2a507e7c0e927d44643c36a5cdc"),
            (15, 8, 105),
        ),
    ];
    for (rel, pre_root, pre_counts, post_root, post_counts) in cases {
        let file = read_json(rel);
        let tests = file.as_object().unwrap();
        assert_eq!(tests.len(), 1, "{rel}: one case");
        let (name, case) = tests.iter().next().unwrap();
        let label = format!("{rel} {name}");

        assert_eq!(b256_field(&case["genesisBlockHeader"]["stateRoot"]), pre_root, "{label}");
        let last = case["blocks"].as_array().unwrap().last().unwrap();
        assert_eq!(b256_field(&last["blockHeader"]["stateRoot"]), post_root, "{label}");

        let pre = parse_alloc_value(&case["pre"]).unwrap_or_else(|e| panic!("{label} pre: {e}"));
        let (a, c, s) = pre_counts;
        check(&format!("{label} pre"), &pre, pre_root, a, c, s);
        let post = parse_alloc_value(&case["postState"]).unwrap_or_else(|e| panic!("{label} postState: {e}"));
        let (a, c, s) = post_counts;
        check(&format!("{label} postState"), &post, post_root, a, c, s);
    }
}

const ADDR: &str = "0x00000000219ab540356cBB839Cbe05303d7705Fa";

/// Parses `text`, which must fail; returns the error and its message.
fn must_fail(text: &str) -> (GenesisError, String) {
    match parse_genesis(text) {
        Ok(v) => panic!("accepted malformed input {text:?}: {} entries", v.len()),
        Err(e) => {
            let msg = e.to_string();
            (e, msg)
        }
    }
}

fn one_account(body: &str) -> String {
    format!(r#"{{"config": {{}}, "alloc": {{"{ADDR}": {body}}}}}"#)
}

#[test]
fn truncated_json_reports_line_and_column() {
    let text = std::fs::read_to_string(fixture("genesis/sepolia-genesis.json")).unwrap();
    let cut = &text[..text.len() / 2];
    let (err, msg) = must_fail(cut);
    let GenesisError::Json { line, column, .. } = err else { panic!("not a JSON error: {msg}") };
    let lines: Vec<&str> = cut.lines().collect();
    assert_eq!(line, lines.len(), "{msg}");
    assert!(column >= 1, "{msg}");
    assert!(msg.contains(&format!("line {line}")) && msg.contains("column"), "{msg}");

    let (err, msg) = must_fail("{\n  \"alloc\": {,}\n}");
    assert!(matches!(err, GenesisError::Json { line: 2, column: 13, .. }), "{msg}");
}

#[test]
fn bad_hex_balance() {
    let (err, msg) = must_fail(&one_account(r#"{"balance": "0xD3C21BCECCEDA10000zz"}"#));
    assert!(matches!(err, GenesisError::BadField { ref field, .. } if field == "balance"), "{msg}");
    assert!(msg.contains(ADDR) && msg.contains("balance") && msg.contains("'z'"), "{msg}");
    // Hex digits without 0x are decimal, and so invalid.
    let (_, msg) = must_fail(&one_account(r#"{"balance": "ff"}"#));
    assert!(msg.contains("decimal"), "{msg}");
}

#[test]
fn balance_overflow() {
    let too_big = format!("0x1{}", "0".repeat(64));
    let (_, msg) = must_fail(&one_account(&format!(r#"{{"balance": "{too_big}"}}"#)));
    assert!(msg.contains("balance") && msg.contains("2^256"), "{msg}");
    // 2^256 in decimal.
    let dec = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
    let (_, msg) = must_fail(&one_account(&format!(r#"{{"balance": "{dec}"}}"#)));
    assert!(msg.contains("2^256"), "{msg}");
    // 2^256 - 1 is fine.
    let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    assert!(parse_genesis(&one_account(&format!(r#"{{"balance": "{max}"}}"#))).is_ok());
    // A bare JSON integer beyond u64 is read exactly (as geth does); a fraction or an
    // exponent is not an integer.
    let big = parse_genesis(&one_account(r#"{"balance": 100000000000000000000000}"#)).unwrap();
    let small = parse_genesis(&one_account(r#"{"balance": "100000000000000000000000"}"#)).unwrap();
    assert_eq!(big[0].1.root(), small[0].1.root());
    for bad in ["1e23", "1.5", "-100000000000000000000000"] {
        let (_, msg) = must_fail(&one_account(&format!(r#"{{"balance": {bad}}}"#)));
        assert!(msg.contains("not an exact non-negative integer"), "{msg}");
    }
}

#[test]
fn empty_storage_word_is_zero() {
    // geth reads "0x" as a zero word: a zero value, so the slot is dropped
    let with = parse_genesis(&one_account(r#"{"balance": "1", "storage": {"0x01": "0x"}}"#)).unwrap();
    let without = parse_genesis(&one_account(r#"{"balance": "1"}"#)).unwrap();
    assert_eq!(with[0].1.root(), without[0].1.root());
}

#[test]
fn file_errors_name_the_line() {
    let dir = std::env::temp_dir().join(format!("syncsim-genesis-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (format!("{{\n \"alloc\": {{\n  \"{ADDR}\": {{\n   \"nonce\": \"1\",\n   \"balance\": \"0xZZ\"\n  }}\n }}\n}}\n"), 5),
        (format!("{{\n \"alloc\": {{\n  \"0x01\": {{}},\n  \"{ADDR}\": {{}}\n }}\n}}\n"), 3),
        (format!("{{\"alloc\": {{\n \"{ADDR}\": {{\n  \"storage\": {{\n   \"0x01\": \"0x02\",\n   \"0xq1\": \"0x01\"\n}}}}}}}}"), 5),
        ("{\n\n \"alloc\": {,}\n}".to_string(), 3),
    ];
    for (i, (text, line)) in cases.iter().enumerate() {
        let path = dir.join(format!("case{i}.json"));
        std::fs::write(&path, text).unwrap();
        let msg = load_genesis(&path).unwrap_err().to_string();
        assert!(msg.contains(&format!("case{i}.json:{line}:")), "line {line} expected: {msg}\n{text}");
    }
}

#[test]
fn address_of_19_bytes() {
    let short = "0x00000000219ab540356cbb839cbe05303d7705";
    let (err, msg) = must_fail(&format!(r#"{{"alloc": {{"{short}": {{"balance": "1"}}}}}}"#));
    assert!(matches!(err, GenesisError::BadAddress { .. }), "{msg}");
    assert!(msg.contains(short) && msg.contains("19 bytes") && msg.contains("20"), "{msg}");
    // Also in a bare alloc.
    let (err, msg) = must_fail(&format!(r#"{{"{short}": {{"balance": "1"}}}}"#));
    assert!(matches!(err, GenesisError::BadAddress { .. }), "{msg}");
}

#[test]
fn storage_key_of_33_bytes() {
    let key = format!("0x{}", "01".repeat(33));
    let (err, msg) = must_fail(&one_account(&format!(r#"{{"storage": {{"{key}": "0x01"}}}}"#)));
    assert!(matches!(err, GenesisError::BadField { .. }), "{msg}");
    assert!(msg.contains(ADDR) && msg.contains("storage key") && msg.contains("33 bytes"), "{msg}");
}

#[test]
fn alloc_not_an_object() {
    let (err, msg) = must_fail(r#"{"config": {}, "alloc": []}"#);
    assert!(matches!(err, GenesisError::AllocNotObject { found: "an array" }), "{msg}");
    assert!(msg.contains("`alloc`") && msg.contains("array"), "{msg}");
}

#[test]
fn other_malformed_inputs() {
    let cases: &[(&str, &[&str])] = &[
        (r#"{"config": {}}"#, &["missing `alloc`", "\"config\""]),
        ("[1, 2]", &["top level", "array"]),
        ("", &["invalid JSON", "line 1"]),
        (&one_account(r#""0x1""#), &[ADDR, "expected an object"]),
        (&one_account(r#"{"code": "0x600"}"#), &[ADDR, "`code`", "odd number"]),
        (&one_account(r#"{"code": 96}"#), &[ADDR, "`code`", "a number"]),
        (&one_account(r#"{"nonce": "0x10000000000000000"}"#), &[ADDR, "`nonce`", "2^64"]),
        (&one_account(r#"{"nonce": -1}"#), &[ADDR, "`nonce`", "-1"]),
        (&one_account(r#"{"balance": "0x"}"#), &[ADDR, "`balance`", "no digits"]),
        (&one_account(r#"{"balance": true}"#), &[ADDR, "`balance`", "boolean"]),
        (&one_account(r#"{"storage": []}"#), &[ADDR, "`storage`", "array"]),
        (&one_account(r#"{"storage": {"0x01": "0x1"}}"#), &[ADDR, "storage[0x01]", "odd"]),
        (&one_account(r#"{"storage": {"0xq1": "0x01"}}"#), &[ADDR, "storage key 0xq1", "'q'"]),
        (&one_account(r#"{"balance": "1", "wei": "2"}"#), &[ADDR, "`wei` are both given"]),
        (r#"{"alloc": {"0xzz": {}}}"#, &["0xzz", "invalid address"]),
        (r#"{"t1": {"alloc": {}}, "t2": {"x": 1}}"#, &["case `t2`", "without `alloc`"]),
        (r#"{"t1": {"alloc": {"0x01": {}}}}"#, &["case `t1`", "\"0x01\"", "1 bytes, expected 20"]),
        (
            r#"{"alloc": {"0x00000000219ab540356cbb839cbe05303d7705fa": {},
                         "00000000219AB540356CBB839CBE05303D7705FA": {}}}"#,
            &["duplicate"],
        ),
    ];
    for (text, needles) in cases {
        let (_, msg) = must_fail(text);
        for needle in *needles {
            assert!(msg.contains(needle), "message {msg:?} lacks {needle:?} (input {text})");
        }
    }
}

#[test]
fn load_genesis_names_the_file() {
    let missing = fixture("genesis/no-such-file.json");
    let err = load_genesis(&missing).unwrap_err();
    assert!(matches!(err, GenesisError::Io { .. }));
    assert!(err.to_string().contains("no-such-file.json"), "{err}");
}

/// Every truncation and a set of single-byte corruptions of a real file: no panic, and any error
/// has a non-empty message.
#[test]
fn never_panics_on_corrupted_files() {
    let text = std::fs::read(fixture("genesis/sepolia-genesis.json")).unwrap();
    let mut tried = 0;
    for cut in 0..text.len() {
        if let Ok(s) = std::str::from_utf8(&text[..cut]) {
            if let Err(e) = parse_genesis(s) {
                assert!(!e.to_string().is_empty());
            }
            tried += 1;
        }
    }
    for pos in 0..text.len() {
        for b in [b'"', b'x', b'0', b'{', b'-', b'9', b'F', b' '] {
            let mut t = text.clone();
            t[pos] = b;
            if let Ok(s) = std::str::from_utf8(&t) {
                let _ = parse_genesis(s).map_err(|e| e.to_string());
                tried += 1;
            }
        }
    }
    assert!(tried > 20_000);
}
