//! Offline tools for a token holder: adding caveats (attenuation) and an unverified look
//! at what a token says. Neither needs a key nor the server.

use std::fmt::Write as _;

use macvault_caveats::{Caveat, format_time};
use serde::Serialize;

use super::{Bundle, DecodeError, LIMITS, Macaroon, TokenIdentifier, decode_text, fingerprint};

/// Why a token could not be attenuated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttenuateError {
    /// The text is not a well-formed token.
    #[error("not a valid token")]
    Decode(#[from] DecodeError),
    /// Nothing to add.
    #[error("no caveats to add")]
    NoCaveats,
    /// Discharges are bound to the token's signature, which attenuation changes.
    #[error(
        "the token carries {0} bound discharge(s), which adding caveats would invalidate; \
         attenuate the token before binding its discharges"
    )]
    HasDischarges(usize),
    /// The result would exceed the caveat-count limit.
    #[error("the token would have more than {0} caveats")]
    TooManyCaveats(usize),
    /// The result would exceed the token-size limit.
    #[error("the token would be longer than {0} bytes")]
    TooLarge(usize),
}

/// Appends `caveats` (in their canonical text) as first-party caveats to the permission
/// token of bundle `text`, and returns the new bundle text. Only narrows what it allows.
pub fn attenuate(text: &str, caveats: &[Caveat<'_>]) -> Result<String, AttenuateError> {
    if caveats.is_empty() {
        return Err(AttenuateError::NoCaveats);
    }
    let bytes = decode_text(text)?;
    let mut bundle = Bundle::parse(&bytes)?;
    if !bundle.discharges.is_empty() {
        return Err(AttenuateError::HasDischarges(bundle.discharges.len()));
    }
    if bundle.token.caveats().len() + caveats.len() > LIMITS.max_caveats {
        return Err(AttenuateError::TooManyCaveats(LIMITS.max_caveats));
    }
    for caveat in caveats {
        bundle.token.add_first_party(caveat.to_string().as_bytes());
    }
    let out = bundle.to_text();
    if out.len() > LIMITS.max_text {
        return Err(AttenuateError::TooLarge(LIMITS.max_text));
    }
    Ok(out)
}

/// What a token says about itself, read without verifying anything.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The token id (32 hex), when the identifier is a macvault one.
    pub token_id: Option<String>,
    /// The org named by the identifier.
    pub org: Option<String>,
    /// The root-key version named by the identifier.
    pub key_version: Option<u32>,
    /// The raw identifier (lossy, escaped), only when it is not a macvault identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_identifier: Option<String>,
    /// First 12 hex digits of SHA-256 over the text, as in the server's ledger.
    pub fingerprint: String,
    /// The token's first-party caveats, in order.
    pub caveats: Vec<InspectedCaveat>,
    /// The token's third-party caveats, in order.
    pub third_party: Vec<ThirdParty>,
    /// The discharges carried in the bundle.
    pub discharges: Vec<Discharge>,
    /// The earliest `not_after` over every caveat that parses (token and discharges).
    pub expires: Option<String>,
}

/// One first-party caveat as written in the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InspectedCaveat {
    /// The predicate text (canonical when it parses; lossy and escaped otherwise).
    pub text: String,
    /// Whether it parses as a macvault caveat (a verifier rejects the token otherwise).
    pub known: bool,
}

/// A third-party caveat: its location and, when its identifier is a macvault ticket,
/// the ticket's clear part (the conditions the discharger checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThirdParty {
    /// Where to get the discharge (lossy, escaped), if the caveat says.
    pub location: Option<String>,
    /// The id of the third party's key the ticket is sealed to (macvault tickets).
    pub key_id: Option<String>,
    /// The ticket's conditions, in canonical text (macvault tickets).
    pub conditions: Vec<String>,
    /// Whether the bundle carries a discharge with this caveat's identifier.
    pub discharged: bool,
}

/// A discharge macaroon of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discharge {
    /// Its location hint (lossy, escaped), if any.
    pub location: Option<String>,
    /// Its first-party caveats.
    pub caveats: Vec<InspectedCaveat>,
    /// How many third-party caveats it carries in turn.
    pub third_party: usize,
}

/// Why a token could not be inspected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid token")]
pub struct InspectError(#[from] DecodeError);

/// Reads a token bundle without verifying it: nothing here is trustworthy until the
/// server has checked the signature.
pub fn inspect(text: &str) -> Result<Inspection, InspectError> {
    let bytes = decode_text(text)?;
    let bundle = Bundle::parse(&bytes)?;
    let mut expires: Option<u64> = None;
    let caveats = first_party(&bundle.token, &mut expires);
    let discharges = bundle
        .discharges
        .iter()
        .map(|d| Discharge {
            location: d.location().map(printable),
            caveats: first_party(d, &mut expires),
            third_party: d.caveats().iter().filter(|c| c.is_third_party()).count(),
        })
        .collect();
    let third_party = bundle
        .token
        .caveats()
        .iter()
        .filter(|c| c.is_third_party())
        .map(|c| {
            let ticket = super::Ticket::decode(&c.id).ok();
            ThirdParty {
                location: c.location.as_deref().map(printable),
                key_id: ticket.as_ref().map(|t| t.key_id().to_string()),
                conditions: ticket
                    .iter()
                    .flat_map(|t| t.conditions())
                    .map(ToString::to_string)
                    .collect(),
                discharged: bundle.discharges.iter().any(|d| d.identifier() == &*c.id),
            }
        })
        .collect();
    let id = TokenIdentifier::decode(bundle.token.identifier()).ok();
    Ok(Inspection {
        token_id: id.as_ref().map(|id| id.token_id.to_string()),
        org: id.as_ref().map(|id| id.org.clone()),
        key_version: id.as_ref().map(|id| id.key_version),
        foreign_identifier: match id {
            Some(_) => None,
            None => Some(printable(bundle.token.identifier())),
        },
        fingerprint: fingerprint(&super::normalize_text(text)?),
        caveats,
        third_party,
        discharges,
        expires: expires.map(format_time),
    })
}

/// The first-party caveats of `m`, lowering `expires` to any expiry they set.
fn first_party(m: &Macaroon<'_>, expires: &mut Option<u64>) -> Vec<InspectedCaveat> {
    m.caveats()
        .iter()
        .filter(|c| !c.is_third_party())
        .map(|c| match Caveat::parse_bytes(&c.id) {
            Ok(caveat) => {
                if let Some(t) = caveat.not_after() {
                    *expires = Some(expires.map_or(t, |e| e.min(t)));
                }
                InspectedCaveat {
                    text: caveat.to_string(),
                    known: true,
                }
            }
            Err(_) => InspectedCaveat {
                text: printable(&c.id),
                known: false,
            },
        })
        .collect()
}

/// Untrusted bytes made safe to print on a terminal: invalid UTF-8 replaced, control
/// characters escaped.
fn printable(bytes: &[u8]) -> String {
    let lossy = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(lossy.len());
    for ch in lossy.chars() {
        if ch.is_control() || ch == '\\' {
            // Writing to a String cannot fail.
            let _ = write!(out, "{}", ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{TokenId, encode_text};
    use super::*;

    fn minted(caveats: &[&str]) -> Macaroon<'static> {
        let id = TokenIdentifier {
            org: "acme".into(),
            key_version: 3,
            token_id: TokenId([7; 16]),
        };
        let mut m = Macaroon::mint(&[9; 32], id.encode().unwrap().as_bytes(), None);
        for c in caveats {
            m.add_first_party(c.as_bytes());
        }
        m
    }

    fn text(caveats: &[&str]) -> String {
        Bundle::single(minted(caveats)).to_text()
    }

    #[test]
    fn attenuation_appends_canonical_caveats_and_keeps_the_chain() {
        let base = text(&["org = acme"]);
        let added = [
            Caveat::parse("app = web:r").unwrap(),
            Caveat::expires(1_800_000_000),
        ];
        let out = attenuate(&base, &added).unwrap();
        // Same as adding them by hand: the HMAC chain simply continues.
        let expected = text(&[
            "org = acme",
            "app = web:r",
            "expires < 2027-01-15T08:00:00Z",
        ]);
        assert_eq!(out, expected);
        let seen = inspect(&out).unwrap();
        let texts: Vec<&str> = seen.caveats.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "org = acme",
                "app = web:r",
                "expires < 2027-01-15T08:00:00Z"
            ]
        );
        assert_eq!(seen.expires.as_deref(), Some("2027-01-15T08:00:00Z"));
    }

    #[test]
    fn attenuation_refusals() {
        let org = [Caveat::org("acme").unwrap()];
        assert_eq!(attenuate(&text(&[]), &[]), Err(AttenuateError::NoCaveats));
        assert_eq!(
            attenuate("mvt_!!", &org),
            Err(AttenuateError::Decode(DecodeError::Text))
        );
        let mut t = minted(&[]);
        t.add_third_party_with_nonce(b"ci", &[2; 32], b"ticket", &[0; 24]);
        let mut d = Macaroon::mint(&[2; 32], b"ticket", None);
        t.bind(&mut d);
        let bound = Bundle {
            token: t,
            discharges: vec![d],
        }
        .to_text();
        assert_eq!(
            attenuate(&bound, &org),
            Err(AttenuateError::HasDischarges(1))
        );
        let full = text(&["actions = r"; 64]);
        assert_eq!(
            attenuate(&full, &org),
            Err(AttenuateError::TooManyCaveats(LIMITS.max_caveats))
        );
    }

    #[test]
    fn inspect_reads_identifier_caveats_and_discharges() {
        let mut t = minted(&["org = acme", "expires < 2030-01-01T00:00:00Z", "frob\n= 1"]);
        t.add_third_party_with_nonce(b"https://ci\x1b", &[2; 32], b"ticket", &[0; 24]);
        let mut d = Macaroon::mint(&[2; 32], b"ticket", Some(b"ci"));
        d.add_first_party(b"expires < 2029-01-01T00:00:00Z");
        t.bind(&mut d);
        let text = Bundle {
            token: t,
            discharges: vec![d],
        }
        .to_text();
        let seen = inspect(&text).unwrap();
        assert_eq!(seen.token_id.as_deref(), Some(&*"07".repeat(16)));
        assert_eq!(seen.org.as_deref(), Some("acme"));
        assert_eq!(seen.key_version, Some(3));
        assert_eq!(seen.foreign_identifier, None);
        assert_eq!(seen.fingerprint, fingerprint(&text));
        assert_eq!(seen.caveats.len(), 3);
        assert!(seen.caveats[0].known && seen.caveats[1].known);
        assert_eq!(
            seen.caveats[2],
            InspectedCaveat {
                text: "frob\\n= 1".into(),
                known: false
            }
        );
        assert_eq!(
            seen.third_party[0].location.as_deref(),
            Some("https://ci\\u{1b}")
        );
        assert_eq!(seen.discharges.len(), 1);
        assert_eq!(seen.discharges[0].location.as_deref(), Some("ci"));
        // The discharge's expiry is earlier, so it is the effective one.
        assert_eq!(seen.expires.as_deref(), Some("2029-01-01T00:00:00Z"));
    }

    #[test]
    fn inspect_shows_foreign_identifiers_and_rejects_garbage() {
        let m = Macaroon::mint(&[1; 32], b"someone else's \xff id", None);
        let seen = inspect(&Bundle::single(m).to_text()).unwrap();
        assert_eq!(seen.token_id, None);
        assert_eq!(
            seen.foreign_identifier.as_deref(),
            Some("someone else's \u{fffd} id")
        );
        assert_eq!(seen.expires, None);
        assert!(inspect("garbage").is_err());
        assert!(inspect(&encode_text(b"\x02\x01")).is_err());
    }

    #[test]
    fn inspection_never_contains_the_signature() {
        let m = minted(&["org = acme"]);
        let sig: String = m
            .expose_signature()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let text = Bundle::single(m).to_text();
        let json = serde_json::to_string(&inspect(&text).unwrap()).unwrap();
        assert!(!json.contains(&sig));
        assert!(!json.contains(&text));
    }
}
