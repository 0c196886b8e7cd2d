//! The libmacaroons-family vectors, reproduced byte for byte: one test per vector file.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use macvault::token::{Bundle, ChainError, Macaroon, derive_key, verify_chain};
use serde_json::Value;

use crate::common::{hex, unhex};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/libmacaroons")
}

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v[k].as_str().unwrap_or_else(|| panic!("field {k}"))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds a macaroon from a vector's key, identifier, location and caveats.
fn build(v: &Value, location: &str) -> Macaroon<'static> {
    let root = derive_key(s(v, "key").as_bytes());
    let mut m = Macaroon::mint(
        &root,
        s(v, "identifier").as_bytes(),
        Some(location.as_bytes()),
    );
    for c in v["caveats"].as_array().unwrap() {
        match s(c, "type") {
            "first" => m.add_first_party(s(c, "predicate").as_bytes()),
            "third" => {
                let nonce: [u8; 24] = unhex(s(c, "nonce_hex")).try_into().unwrap();
                let key = derive_key(s(c, "key").as_bytes());
                m.add_third_party_with_nonce(
                    s(c, "location").as_bytes(),
                    &key,
                    s(c, "id").as_bytes(),
                    &nonce,
                );
            }
            other => panic!("unknown caveat type {other}"),
        }
    }
    m
}

fn check(name: &str) {
    let text = std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let m = build(&v, s(&v, "location"));

    assert_eq!(
        hex(m.expose_signature()),
        s(&v, "expected_signature_hex"),
        "signature"
    );
    assert_eq!(b64(&m.to_v1().unwrap()), s(&v, "expected_v1"), "v1");
    assert_eq!(hex(&m.to_v2()), s(&v, "expected_v2_hex"), "v2 hex");
    assert_eq!(b64(&m.to_v2()), s(&v, "expected_v2_b64"), "v2 b64");

    // Decoding the published bytes gives back the same bytes.
    let v2 = URL_SAFE_NO_PAD.decode(s(&v, "expected_v2_b64")).unwrap();
    let decoded = Macaroon::from_v2(&v2).unwrap();
    assert_eq!(decoded.to_v2(), v2);
    assert_eq!(decoded.expose_signature(), m.expose_signature());
    let v1 = URL_SAFE_NO_PAD.decode(s(&v, "expected_v1")).unwrap();
    let decoded = Macaroon::from_v1(&v1).unwrap();
    assert_eq!(decoded.to_v1().unwrap(), v1);
    assert_eq!(decoded.to_v2(), v2);

    let mut discharges = Vec::new();
    for d in v["discharges"].as_array().unwrap() {
        let mut dm = build(d, s(d, "location"));
        assert_eq!(
            hex(dm.expose_signature()),
            s(d, "expected_unbound_signature_hex")
        );
        m.bind(&mut dm);
        assert_eq!(
            hex(dm.expose_signature()),
            s(d, "expected_bound_signature_hex")
        );
        assert_eq!(b64(&dm.to_v1().unwrap()), s(d, "expected_bound_v1"));
        assert_eq!(b64(&dm.to_v2()), s(d, "expected_bound_v2_b64"));
        discharges.push(dm);
    }

    // A verifier that knows exactly the listed predicates decides as the peers did.
    let exact: Vec<&str> = v["verifier_exact"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let bundle = Bundle {
        token: m,
        discharges,
    };
    let root = derive_key(s(&v, "key").as_bytes());
    let result = verify_chain(&root, &bundle, |p| {
        if exact.iter().any(|e| e.as_bytes() == p) {
            Ok(())
        } else {
            Err(())
        }
    });
    assert_eq!(
        result.is_ok(),
        v["expect_authorized"].as_bool().unwrap(),
        "{result:?}"
    );

    // The same bundle through its text form.
    let text = bundle.to_text();
    let bytes = macvault::token::decode_text(&text).unwrap();
    let again = Bundle::parse(&bytes).unwrap();
    assert_eq!(again.discharges.len(), bundle.discharges.len());
    assert_eq!(again.to_text(), text);

    // A wrong root key never verifies.
    let wrong = derive_key(b"not the key");
    assert_eq!(
        verify_chain(&wrong, &bundle, |_| Ok::<(), ()>(())).err(),
        Some(ChainError::BadSignature)
    );
}

macro_rules! vectors {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { check(stringify!($name)); })*

        /// Every vector file has a test above: a new file without one fails here.
        #[test]
        fn every_vector_file_is_tested() {
            let mut names: Vec<String> = std::fs::read_dir(dir()).unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
                .collect();
            names.sort();
            let mut listed = vec![$(stringify!($name).to_owned()),*];
            listed.sort();
            assert_eq!(names, listed);
        }
    };
}

vectors!(
    libmacaroons_vtest_2caveats,
    libmacaroons_vtest_root,
    peers_bench_5caveats,
    peers_empty_location,
    peers_fp3_2035,
    peers_tp_seq_nonce,
    pymacaroons_acaveat,
    pymacaroons_inspect_tp,
    pymacaroons_prepare_for_request,
    pymacaroons_test_caveat,
    readme_3caveats,
    readme_account,
    readme_root,
    readme_third_party_zero_nonce,
    readme_time2020,
);

/// The copies beside the tests are the shared vectors, unchanged.
#[test]
fn copies_match_shared_vectors() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/libmacaroons");
    if !shared.exists() {
        return; // a checkout without shared/ beside it still has the copies
    }
    for e in std::fs::read_dir(dir()).unwrap() {
        let p = e.unwrap().path();
        let theirs = std::fs::read(shared.join(p.file_name().unwrap())).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), theirs, "{}", p.display());
    }
}

/// pymacaroons writes an empty location field (`01 00`); it decodes to the canonical
/// macaroon, which re-encodes without it.
#[test]
fn empty_location_field_is_accepted() {
    let canonical = unhex(
        "02021677652075736564206f757220736563726574206b65790002146163636f756e74203d2033373335393238353539000006201efe4763f290dbce0c1d08477367e11f4eee456a64933cf662d79772dbb82128",
    );
    let mut pymacaroons = vec![0x02, 0x01, 0x00];
    pymacaroons.extend_from_slice(&canonical[1..]);
    let m = Macaroon::from_v2(&pymacaroons).unwrap();
    assert_eq!(m.location(), None);
    assert_eq!(m.to_v2(), canonical);
}
