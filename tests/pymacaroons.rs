//! Third-party caveats and discharges as another macaroon library reads them: a token
//! with one of our third-party caveats (an HPKE ticket as caveat id) and its bound
//! discharge, serialised as libmacaroons v2, verify in pymacaroons 0.13 (installed
//! from PyPI into the test's target directory by `support::python_package`). A wrong
//! root key, a missing discharge and a tampered discharge fail there too, and the
//! binding of a discharge to its token is byte-for-byte what pymacaroons computes.

use macvault::caveats::Caveat;
use macvault::token::{
    Bundle, Macaroon, PrivateKey, RootKey, Ticket, add_third_party, bind_discharges, decode_text,
    derive_key, encode_text, make_discharge,
};
use serde_json::Value;

use crate::support::python_package;

const SECRET: &str = "a root secret both libraries derive the same key from";
const LOCATION: &str = "https://macvault.example/ci";
/// 2100-01-01T00:00:00Z: the discharge's expiry, far enough not to matter.
const EXPIRY: u64 = 4_102_444_800;

/// Prints one JSON object: what pymacaroons says of `token` with `discharges` (hex of
/// v2 binaries) under `SECRET` and under another secret, and the signature it gives
/// `unbound` once bound to `token`.
const SCRIPT: &str = r#"
import binascii, json, sys
from pymacaroons import Verifier
from pymacaroons.serializers import BinarySerializer

def load(h):
    return BinarySerializer().deserialize_raw(binascii.unhexlify(h))

args = json.loads(sys.argv[1])
token = load(args["token"])
discharges = [load(h) for h in args["discharges"]]

def check(secret, ds):
    v = Verifier()
    v.satisfy_general(lambda predicate: True)
    try:
        return v.verify(token, secret, ds)
    except Exception as e:
        return type(e).__name__

out = {
    "third_party_caveats": len(token.third_party_caveats()),
    "right_key": check(args["secret"], discharges),
    "wrong_key": check(args["secret"] + "x", discharges),
    "no_discharge": check(args["secret"], []),
}
if args.get("unbound"):
    out["bound_signature"] = token.prepare_for_request(load(args["unbound"])).signature
print(json.dumps(out))
"#;

fn pymacaroons(args: &Value) -> Value {
    let path = python_package("pymacaroons==0.13.0", "pymacaroons");
    crate::support::python_json(&path, SCRIPT, args.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A token under `derive_key(SECRET)` with one first-party caveat and one of our
/// third-party caveats; its ticket opened as a discharger would, and the discharge
/// made (unbound, as token text) with an expiry caveat.
fn token_and_discharge() -> (String, String) {
    let mut m = Macaroon::mint(
        &derive_key(SECRET.as_bytes()),
        b"an identifier",
        Some(b"macvault"),
    );
    m.add_first_party(b"org = acme");
    let text = encode_text(&m.to_v2());
    let (private, public) = PrivateKey::generate().unwrap();
    let text = add_third_party(&text, LOCATION, &public, &[]).unwrap();

    let bytes = decode_text(&text).unwrap();
    let bundle = Bundle::parse(&bytes).unwrap();
    let caveat = bundle.token.caveats().last().unwrap();
    assert!(caveat.is_third_party());
    let ticket = Ticket::decode(&caveat.id).unwrap();
    let root: RootKey = ticket.open(&private).unwrap();
    let discharge = make_discharge(&caveat.id, LOCATION, &root, &[Caveat::expires(EXPIRY)]);
    (text, encode_text(&discharge.to_v2()))
}

fn v2_parts(text: &str) -> (String, Vec<String>) {
    let bytes = decode_text(text).unwrap();
    let bundle = Bundle::parse(&bytes).unwrap();
    let discharges = bundle.discharges.iter().map(|d| hex(&d.to_v2())).collect();
    (hex(&bundle.token.to_v2()), discharges)
}

#[test]
fn pymacaroons_verifies_our_third_party_caveat_and_discharge() {
    let (text, unbound) = token_and_discharge();
    let bound = bind_discharges(&text, std::slice::from_ref(&unbound)).unwrap();
    let (token, discharges) = v2_parts(&bound);
    assert_eq!(discharges.len(), 1);
    let unbound_hex = hex(&decode_text(&unbound).unwrap());
    let v = pymacaroons(&serde_json::json!({
        "secret": SECRET, "token": token, "discharges": discharges, "unbound": unbound_hex,
    }));
    assert_eq!(v["third_party_caveats"], 1, "{v}");
    assert_eq!(v["right_key"], true, "{v}");
    // Under another root key the chain differs before the third-party caveat, so its
    // verification id does not open: PyNaCl's CryptoError.
    assert_eq!(v["wrong_key"], "CryptoError", "{v}");
    assert_eq!(v["no_discharge"], "MacaroonUnmetCaveatException", "{v}");

    // The binding: pymacaroons' prepare_for_request gives our bound signature.
    let bytes = decode_text(&bound).unwrap();
    let ours = Bundle::parse(&bytes).unwrap().discharges[0]
        .expose_signature()
        .to_vec();
    assert_eq!(v["bound_signature"], hex(&ours), "{v}");
}

#[test]
fn pymacaroons_refuses_a_tampered_or_unbound_discharge() {
    let (text, unbound) = token_and_discharge();
    let bound = bind_discharges(&text, std::slice::from_ref(&unbound)).unwrap();
    let (token, discharges) = v2_parts(&bound);

    // The bound discharge with one letter of its expiry caveat changed: the chain no
    // longer matches its signature.
    let mut tampered = unhex(&discharges[0]);
    let at = tampered
        .windows(b"2100".len())
        .position(|w| w == b"2100")
        .unwrap();
    tampered[at + 1] = b'2';
    let v = pymacaroons(&serde_json::json!({
        "secret": SECRET, "token": token, "discharges": [hex(&tampered)],
    }));
    assert_eq!(v["right_key"], "MacaroonInvalidSignatureException", "{v}");

    // The discharge as the discharger made it, never bound to this token.
    let v = pymacaroons(&serde_json::json!({
        "secret": SECRET, "token": token, "discharges": [hex(&decode_text(&unbound).unwrap())],
    }));
    assert_eq!(v["right_key"], "MacaroonInvalidSignatureException", "{v}");
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}
