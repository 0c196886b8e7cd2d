//! The JSON form of caveats (caveat files, the API): externally tagged, validated like the
//! constructors.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use crate::{ActionSet, Caveat, IpNet, ParseError, Resource, time::Timestamp};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Json {
    Org(String),
    Apps(BTreeMap<String, ActionSet>),
    Actions(ActionSet),
    Validity(Window),
    Secrets(Vec<String>),
    Resources(Vec<Resource>),
    SourceIp(Vec<String>),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Window {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_before: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_after: Option<Time>,
}

/// Unix seconds as RFC 3339 text.
struct Time(u64);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Timestamp(self.0))
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        crate::parse_time(&text).map(Time).map_err(D::Error::custom)
    }
}

impl From<&Caveat<'_>> for Json {
    fn from(caveat: &Caveat<'_>) -> Self {
        match caveat {
            Caveat::Org(name) => Json::Org(name.as_str().to_owned()),
            Caveat::Apps(apps) => Json::Apps(apps.iter().map(|(n, s)| (n.to_owned(), s)).collect()),
            Caveat::Actions(set) => Json::Actions(*set),
            Caveat::Validity(w) => Json::Validity(Window {
                not_before: w.not_before().map(Time),
                not_after: w.not_after().map(Time),
            }),
            Caveat::Secrets(patterns) => {
                Json::Secrets(patterns.iter().map(str::to_owned).collect())
            }
            Caveat::Resources(set) => Json::Resources(set.iter().collect()),
            Caveat::SourceIp(nets) => Json::SourceIp(nets.iter().map(|n| n.to_string()).collect()),
        }
    }
}

impl TryFrom<Json> for Caveat<'static> {
    type Error = ParseError;
    fn try_from(json: Json) -> Result<Self, ParseError> {
        match json {
            Json::Org(name) => Caveat::org(&name),
            Json::Apps(apps) => Caveat::apps(apps),
            Json::Actions(set) => Caveat::actions(set),
            Json::Validity(w) => {
                Caveat::validity(w.not_before.map(|t| t.0), w.not_after.map(|t| t.0))
            }
            Json::Secrets(patterns) => Caveat::secrets(patterns),
            Json::Resources(kinds) => Caveat::resources(kinds.into_iter().collect()),
            Json::SourceIp(nets) => Caveat::source_ip(
                nets.iter()
                    .map(|n| n.parse::<IpNet>())
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        }
    }
}

impl Serialize for Caveat<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Json::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Caveat<'static> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Caveat::try_from(Json::deserialize(d)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms() {
        for (json, text) in [
            (r#"{"org":"acme"}"#, "org = acme"),
            (r#"{"apps":{"api":"r","web":"rw"}}"#, "app = api:r,web:rw"),
            (r#"{"actions":"r"}"#, "actions = r"),
            (
                r#"{"validity":{"not_before":"2026-11-01T00:00:00Z","not_after":"2026-12-01T00:00:00Z"}}"#,
                "valid 2026-11-01T00:00:00Z .. 2026-12-01T00:00:00Z",
            ),
            (
                r#"{"validity":{"not_after":"2026-12-01T00:00:00Z"}}"#,
                "expires < 2026-12-01T00:00:00Z",
            ),
            (r#"{"secrets":["API_KEY","DB_*"]}"#, "secret = API_KEY,DB_*"),
            (
                r#"{"resources":["secrets","tokens"]}"#,
                "resource = secrets,tokens",
            ),
            (
                r#"{"source_ip":["10.0.0.0/8","2001:db8::/32"]}"#,
                "ip = 10.0.0.0/8,2001:db8::/32",
            ),
        ] {
            let caveat: Caveat<'static> = serde_json::from_str(json).unwrap();
            assert_eq!(caveat.to_string(), text);
            assert_eq!(serde_json::to_string(&caveat).unwrap(), json);
        }
        // The JSON form canonicalizes order, like the constructors.
        let c: Caveat<'static> = serde_json::from_str(r#"{"secrets":["DB_*","API_KEY"]}"#).unwrap();
        assert_eq!(c.to_string(), "secret = API_KEY,DB_*");
        let file: Vec<Caveat<'static>> =
            serde_json::from_str(r#"[{"org":"acme"},{"actions":"r"}]"#).unwrap();
        assert_eq!(file.len(), 2);
    }

    #[test]
    fn json_rejections() {
        for bad in [
            r#"{"org":"Acme"}"#,
            r#"{"org":"acme","actions":"r"}"#,
            r#"{"orgs":"acme"}"#,
            r#"{"apps":{}}"#,
            r#"{"apps":{"web":""}}"#,
            r#"{"apps":{"web":"wr"}}"#,
            r#"{"apps":{"Web":"r"}}"#,
            r#"{"actions":""}"#,
            r#"{"validity":{}}"#,
            r#"{"validity":{"not_after":"2026-12-01T00:00:00+00:00"}}"#,
            r#"{"validity":{"not_after":"2026-12-01T00:00:00Z","until":"x"}}"#,
            r#"{"validity":{"not_before":"2026-12-01T00:00:00Z","not_after":"2026-11-01T00:00:00Z"}}"#,
            r#"{"secrets":[]}"#,
            r#"{"secrets":["a b"]}"#,
            r#"{"resources":[]}"#,
            r#"{"resources":["secret"]}"#,
            r#"{"source_ip":["10.0.0.1/8"]}"#,
            r#"{"source_ip":[]}"#,
            r#""org""#,
        ] {
            assert!(
                serde_json::from_str::<Caveat<'static>>(bad).is_err(),
                "accepted {bad}"
            );
        }
    }
}
