//! Token text -> bytes -> Bundle; whatever parses must re-encode to a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use macvault::token::{Bundle, decode_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(bytes) = decode_text(text) else {
        return;
    };
    let Ok(bundle) = Bundle::parse(&bytes) else {
        return;
    };
    // The first re-encoding may differ from the input (an empty location field
    // decodes to "no location"); from there on it must be a fixed point.
    let text1 = bundle.to_text();
    let bytes1 = decode_text(&text1).expect("to_text output must decode");
    let bundle1 = Bundle::parse(&bytes1).expect("to_text output must parse");
    assert_eq!(bundle1.discharges.len(), bundle.discharges.len());
    assert_eq!(bundle1.token.identifier(), bundle.token.identifier());
    assert_eq!(bundle1.to_text(), text1, "to_text is not idempotent");
});
