//! Predicate bytes -> Caveat; the text form is canonical and the JSON form round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use macvault_caveats::Caveat;

fuzz_target!(|data: &[u8]| {
    let Ok(caveat) = Caveat::parse_bytes(data) else {
        return;
    };
    let text = caveat.to_string();
    assert_eq!(
        text.as_bytes(),
        data,
        "accepted a non-canonical caveat text"
    );
    let owned = caveat.into_owned();
    assert_eq!(owned.to_string(), text, "into_owned changed the caveat");
    let json = serde_json::to_string(&owned).expect("a caveat must serialize");
    let back: Caveat<'static> = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("JSON form {json} of {text:?} does not deserialize: {e}"));
    assert_eq!(
        back.to_string(),
        text,
        "JSON round trip changed the caveat ({json})"
    );
    assert_eq!(back, owned);
    assert_eq!(
        serde_json::to_string(&back).expect("a caveat must serialize"),
        json,
        "JSON form is not canonical"
    );
});
