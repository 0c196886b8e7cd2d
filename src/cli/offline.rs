//! `tokens attenuate` and `tokens inspect`: offline, on the token alone.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::Ctx;
use super::exit::usage;
use super::input::{parse_duration, parse_resource};
use super::output::{self, clean, or_dash, span2};
use crate::caveats::{Action, ActionSet, Caveat, IpNet, Resource, ResourceSet, parse_time};
use crate::token::{self, Inspection};

/// Largest caveats file read.
const MAX_CAVEATS_FILE: u64 = 256 * 1024;

#[derive(Args)]
pub struct AttenuateArgs {
    /// The token (`-` for stdin; else the presented one).
    #[arg(value_name = "TOKEN")]
    given: Option<String>,
    /// Only these apps, e.g. `web` (every action) or `web:r`; all together form one caveat.
    #[arg(long, value_name = "APP[:ACTIONS]", value_parser = parse_app)]
    app: Vec<(String, ActionSet)>,
    /// Only reading (`actions = r`).
    #[arg(long)]
    read_only: bool,
    /// Expires this long from now, e.g. 1h, 7d.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    expiry: Option<Duration>,
    /// Only secrets matching these patterns (`NAME` or `PREFIX*`).
    #[arg(long, value_name = "PATTERN")]
    secret: Vec<String>,
    /// Only requests from these networks, e.g. 10.0.0.0/8.
    #[arg(long, value_name = "CIDR")]
    ip: Vec<IpNet>,
    /// Only these resource kinds: apps, audit, keys, orgs, secrets, tokens.
    #[arg(long, value_name = "KIND", value_parser = parse_resource)]
    resource: Vec<Resource>,
    /// A JSON file holding an array of caveats in their JSON form.
    #[arg(long, value_name = "FILE")]
    caveats: Option<PathBuf>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// The token (`-` for stdin; else the presented one).
    #[arg(value_name = "TOKEN")]
    given: Option<String>,
}

/// `APP` (every action) or `APP:LETTERS`.
fn parse_app(s: &str) -> Result<(String, ActionSet), String> {
    let (name, actions) = match s.split_once(':') {
        Some((name, letters)) => (name, letters.parse().map_err(|e| format!("{e}"))?),
        None => (s, ActionSet::ALL),
    };
    Ok((name.to_owned(), actions))
}

/// The token's effective expiry, if it says one.
fn expires(seen: &Inspection) -> Option<u64> {
    seen.expires.as_deref().and_then(|t| parse_time(t).ok())
}

pub fn attenuate(ctx: &Ctx, args: &AttenuateArgs) -> anyhow::Result<ExitCode> {
    let now = crate::authority::system_now();
    let caveats = attenuation_caveats(args, now)?;
    if caveats.is_empty() {
        return Err(usage(
            "no caveats to add: give at least one of --app, --read-only, --expiry, --secret, \
             --ip, --resource, --caveats",
        ));
    }
    let text = ctx.subject(args.given.as_deref())?;
    let seen = token::inspect(text.expose())?;
    if let Some(t) = expires(&seen).filter(|t| *t <= now) {
        anyhow::bail!(
            "the token EXPIRED {} ago: a narrower copy of it could not work either",
            span2(now - t)
        );
    }
    let held: Vec<Caveat<'_>> = seen
        .caveats
        .iter()
        .filter_map(|c| Caveat::parse(&c.text).ok())
        .collect();
    for c in &caveats {
        if let Some(h) = held.iter().find(|h| h.implies(c)) {
            eprintln!("warning: `{c}` changes nothing: the token already has `{h}`");
        }
        if let Some(h) = held.iter().find(|h| h.excludes(c)) {
            eprintln!(
                "warning: with `{c}` the token can do nothing at all: `{h}` already rules out everything it allows"
            );
        }
    }
    let narrower = token::attenuate(text.expose(), &caveats)?;
    if ctx.json() {
        output::json(&serde_json::json!({ "token": narrower }))?;
    } else {
        output::line(narrower)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The caveats the flags ask for, in a fixed order.
fn attenuation_caveats(args: &AttenuateArgs, now: u64) -> anyhow::Result<Vec<Caveat<'static>>> {
    let mut caveats = Vec::new();
    if !args.app.is_empty() {
        caveats.push(Caveat::apps(args.app.iter().cloned()).context("--app")?);
    }
    if args.read_only {
        caveats.push(Caveat::actions(Action::Read.into())?);
    }
    if !args.secret.is_empty() {
        caveats.push(Caveat::secrets(&args.secret).context("--secret")?);
    }
    if !args.resource.is_empty() {
        let set: ResourceSet = args.resource.iter().copied().collect();
        caveats.push(Caveat::resources(set)?);
    }
    if !args.ip.is_empty() {
        caveats.push(Caveat::source_ip(args.ip.iter().copied()).context("--ip")?);
    }
    if let Some(d) = args.expiry {
        caveats.push(Caveat::expires(now.saturating_add(d.as_secs())));
    }
    if let Some(path) = &args.caveats {
        caveats.extend(read_caveats_file(path)?);
    }
    Ok(caveats)
}

fn read_caveats_file(path: &Path) -> anyhow::Result<Vec<Caveat<'static>>> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| usage(format!("cannot open {shown}: {e}")))?;
    let mut text = String::new();
    file.take(MAX_CAVEATS_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {shown}"))?;
    if text.len() as u64 > MAX_CAVEATS_FILE {
        return Err(usage(format!(
            "{shown} is larger than {MAX_CAVEATS_FILE} bytes"
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| usage(format!("{shown} is not a JSON array of caveats: {e}")))
}

pub fn inspect(ctx: &Ctx, args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let text = ctx.subject(args.given.as_deref())?;
    let seen = token::inspect(text.expose())?;
    if ctx.json() {
        output::json(&seen)?;
    } else {
        output::line(render_inspection(&seen, crate::authority::system_now()).trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `inspect` prints. Caveats are numbered as the server numbers them in denials:
/// the token's first, then each discharge's, counting on.
pub fn render_inspection(seen: &Inspection, now: u64) -> String {
    let mut rows: Vec<(&str, String)> = match &seen.foreign_identifier {
        Some(raw) => vec![("identifier", format!("{raw} (not a macvault identifier)"))],
        None => vec![
            ("token id", or_dash(seen.token_id.as_deref()).into_owned()),
            ("org", or_dash(seen.org.as_deref()).into_owned()),
            (
                "key version",
                seen.key_version.map_or("-".into(), |v| v.to_string()),
            ),
        ],
    };
    rows.push(("fingerprint", seen.fingerprint.clone()));
    let expiry = match (seen.expires.as_deref(), expires(seen)) {
        (Some(text), Some(t)) if t <= now => format!("EXPIRED {} ago ({text})", span2(now - t)),
        (Some(text), Some(t)) => format!("in {} ({text})", span2(t - now)),
        (Some(text), None) => text.to_owned(),
        (None, _) => "never".into(),
    };
    rows.push(("expires", expiry));
    rows.push(("discharges", seen.discharges.len().to_string()));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in &rows {
        out.push_str(&format!("{k:width$}  {}\n", clean(v)));
    }
    out.push_str("caveats (unverified):\n");
    let mut n = 0;
    let mut caveats = |list: &[token::InspectedCaveat], out: &mut String| {
        if list.is_empty() {
            out.push_str("  (none)\n");
        }
        for c in list {
            n += 1;
            let mark = if c.known {
                ""
            } else {
                "  [not a macvault caveat]"
            };
            out.push_str(&format!("  {n}. {}{mark}\n", clean(&c.text)));
        }
    };
    caveats(&seen.caveats, &mut out);
    for (i, tp) in seen.third_party.iter().enumerate() {
        let at = or_dash(tp.location.as_deref());
        out.push_str(&format!(
            "third-party caveat {}: discharged at {at}\n",
            i + 1
        ));
    }
    for (i, d) in seen.discharges.iter().enumerate() {
        let at = or_dash(d.location.as_deref());
        out.push_str(&format!("discharge {} (from {at}):\n", i + 1));
        caveats(&d.caveats, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_flags() {
        assert_eq!(parse_app("web"), Ok(("web".into(), ActionSet::ALL)));
        let r = ActionSet::from(Action::Read);
        assert_eq!(parse_app("web:r"), Ok(("web".into(), r)));
        assert!(parse_app("web:wr").is_err());
        assert!(parse_app("web:").is_err());
    }
}
