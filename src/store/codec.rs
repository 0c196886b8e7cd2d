//! How rows become bytes: a one-byte row version, then postcard, decoded strictly (no
//! trailing bytes; re-encoding must give the same bytes, since postcard alone accepts
//! overlong varints). A row written by a newer schema is refused, not misread.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// The version byte of rows this build writes (the schema version that defined them).
pub const ROW_VERSION: u8 = 2;

/// `[ROW_VERSION] || postcard(row)`.
pub fn encode<T: Serialize>(row: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(row, vec![ROW_VERSION])
        .map_err(|e| StoreError::Internal(format!("cannot encode a row: {e}")))
}

/// Decodes a row written by [`encode`]; `what` names it in errors.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&ROW_VERSION, payload)) => strict(payload, what),
        Some((&v, _)) if v > ROW_VERSION => Err(StoreError::Corrupt(format!(
            "{what} row written by a newer schema (row version {v})"
        ))),
        _ => Err(StoreError::Corrupt(format!("{what} row"))),
    }
}

/// Strict postcard: exactly one value, canonically encoded.
pub fn strict<T: Serialize + DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("{what} row"));
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|_| corrupt())?;
    if !rest.is_empty() {
        return Err(corrupt());
    }
    let again = postcard::to_allocvec(&value).map_err(|_| corrupt())?;
    if again != bytes {
        return Err(corrupt());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Row {
        name: String,
        n: u64,
    }

    #[test]
    fn strict_and_versioned() {
        let row = Row {
            name: "acme".into(),
            n: 1,
        };
        let mut bytes = encode(&row).unwrap();
        assert_eq!(bytes[0], ROW_VERSION);
        assert_eq!(decode::<Row>(&bytes, "t").unwrap(), row);
        bytes.push(0);
        assert!(decode::<Row>(&bytes, "t").is_err(), "trailing byte");
        // `n` = 1 as an overlong varint.
        let overlong = [ROW_VERSION, 4, b'a', b'c', b'm', b'e', 0x81, 0x00];
        assert!(decode::<Row>(&overlong, "t").is_err());
        let newer = [ROW_VERSION + 1, 4, b'a', b'c', b'm', b'e', 1];
        let e = decode::<Row>(&newer, "org").unwrap_err();
        assert!(e.to_string().contains("newer schema"), "{e}");
        assert!(decode::<Row>(&[], "t").is_err());
    }
}
