//! `macvault tokens discharge`: gets the discharges a CI job's bundles need, with the
//! job's OIDC ID token, one request per location, and prints each bundle complete
//! (docs/THIRD_PARTIES.md).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use zeroize::Zeroizing;

use super::Ctx;
use super::client::{Client, parse_url};
use super::exit::usage;
use super::output::{self, clean};
use crate::api::{DischargeRequest, DischargeResponse, PublishedKeyBody};
use crate::token::{self, Bundle, Ticket};

/// Largest ID token read from a file or the environment.
const MAX_ID_TOKEN: u64 = 16 * 1024;

#[derive(Args)]
pub struct DischargeArgs {
    /// Bundles to complete (`-` for stdin; else the presented token).
    #[arg(value_name = "BUNDLE")]
    bundles: Vec<String>,
    /// Read the job's OIDC ID token from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "oidc_token_env")]
    oidc_token_file: Option<PathBuf>,
    /// Read the job's OIDC ID token from this environment variable (GitLab CI's
    /// `id_tokens:`). Without either, in GitHub Actions, one is requested with
    /// ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN.
    #[arg(long, value_name = "NAME")]
    oidc_token_env: Option<String>,
    /// The audience to request from GitHub Actions (default: the third party's, as its
    /// location publishes it).
    #[arg(long, value_name = "AUD")]
    oidc_audience: Option<String>,
}

/// A third-party caveat a bundle still needs a discharge for.
struct Wanted {
    bundle: usize,
    ticket: Vec<u8>,
}

pub fn discharge(ctx: &Ctx, args: &DischargeArgs) -> anyhow::Result<ExitCode> {
    let mut texts = Vec::new();
    if args.bundles.is_empty() {
        texts.push(ctx.subject(None)?.expose().to_owned());
    } else {
        for b in &args.bundles {
            texts.push(ctx.subject(Some(b))?.expose().to_owned());
        }
    }
    // Every undischarged third-party caveat, by location, in bundle order.
    let mut by_location: BTreeMap<String, Vec<Wanted>> = BTreeMap::new();
    for (i, text) in texts.iter().enumerate() {
        let bytes = token::decode_text(text).with_context(|| format!("bundle {}", i + 1))?;
        let bundle = Bundle::parse(&bytes).with_context(|| format!("bundle {}", i + 1))?;
        for m in std::iter::once(&bundle.token).chain(&bundle.discharges) {
            for c in m.caveats().iter().filter(|c| c.is_third_party()) {
                let answered = bundle.discharges.iter().any(|d| d.identifier() == &*c.id);
                if answered {
                    continue;
                }
                let location = c
                    .location
                    .as_deref()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .ok_or_else(|| {
                        usage(format!(
                            "bundle {}: a third-party caveat names no location",
                            i + 1
                        ))
                    })?;
                by_location.entry(location).or_default().push(Wanted {
                    bundle: i,
                    ticket: c.id.to_vec(),
                });
            }
        }
    }
    if by_location.is_empty() {
        eprintln!("nothing to discharge: every third-party caveat has its discharge");
    }
    let mut added: Vec<Vec<String>> = vec![Vec::new(); texts.len()];
    for (location, wanted) in &by_location {
        let id_token = id_token(args, location, &wanted[0].ticket)?;
        let client = Client::new(parse_url(location)?, None)?;
        let req = DischargeRequest {
            tickets: wanted.iter().map(|w| Ticket::text_of(&w.ticket)).collect(),
            oidc_token: id_token.to_string(),
        };
        let got: DischargeResponse =
            super::block_on(client.post_anonymous(&[".well-known", "macvault", "3p"], &req))
                .with_context(|| format!("discharges from {}", clean(location)))?;
        if got.discharges.len() != wanted.len() {
            anyhow::bail!(
                "{} answered {} discharges for {} tickets",
                clean(location),
                got.discharges.len(),
                wanted.len()
            );
        }
        for (w, d) in wanted.iter().zip(got.discharges) {
            added[w.bundle].push(d);
        }
    }
    let mut done = Vec::with_capacity(texts.len());
    for (text, discharges) in texts.iter().zip(&added) {
        done.push(if discharges.is_empty() {
            text.clone()
        } else {
            token::bind_discharges(text, discharges)?
        });
    }
    if ctx.json() {
        output::json(&serde_json::json!({ "bundles": done }))?;
    } else {
        for b in done {
            output::precious(b, "the completed bundle")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The job's ID token: from a file, an environment variable, or GitHub Actions.
fn id_token(
    args: &DischargeArgs,
    location: &str,
    ticket: &[u8],
) -> anyhow::Result<Zeroizing<String>> {
    if let Some(path) = &args.oidc_token_file {
        let shown = path.display();
        let file = std::fs::File::open(path)
            .map_err(|e| usage(format!("--oidc-token-file: cannot open {shown}: {e}")))?;
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_ID_TOKEN)
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read {shown}"))?;
        return nonempty(text, &shown.to_string());
    }
    if let Some(name) = &args.oidc_token_env {
        let value = std::env::var(name)
            .map_err(|_| usage(format!("--oidc-token-env: {} is not set", clean(name))))?;
        return nonempty(Zeroizing::new(value), name);
    }
    let (Ok(url), Ok(bearer)) = (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) else {
        return Err(usage(
            "no ID token: give --oidc-token-file or --oidc-token-env, or run in GitHub Actions \
             with `permissions: id-token: write`",
        ));
    };
    let bearer = Zeroizing::new(bearer);
    let audience = match &args.oidc_audience {
        Some(a) => a.clone(),
        None => {
            let kid = Ticket::decode(ticket)
                .map(|t| t.key_id().to_string())
                .map_err(|e| usage(format!("a ticket for {}: {e}", clean(location))))?;
            let client = Client::new(parse_url(location)?, None)?;
            let key: PublishedKeyBody = super::block_on(client.get_anonymous(&[
                ".well-known",
                "macvault",
                "3p",
                "keys",
                &kid,
            ]))
            .with_context(|| format!("the audience of {}", clean(location)))?;
            key.audience
        }
    };
    let mut request = reqwest::Url::parse(&url)
        .map_err(|_| usage("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL"))?;
    request.query_pairs_mut().append_pair("audience", &audience);
    #[derive(serde::Deserialize)]
    struct Answer {
        value: String,
    }
    let answer: Answer = super::block_on(async {
        let resp = reqwest::Client::new()
            .get(request)
            .bearer_auth(bearer.as_str())
            .send()
            .await
            .context("requesting an ID token from GitHub Actions")?;
        let status = resp.status();
        if !status.is_success() {
            anyhow::bail!("GitHub Actions answered {status} to the ID token request");
        }
        resp.json::<Answer>()
            .await
            .context("GitHub Actions' ID token answer")
    })?;
    nonempty(Zeroizing::new(answer.value), "GitHub Actions' answer")
}

fn nonempty(text: Zeroizing<String>, whence: &str) -> anyhow::Result<Zeroizing<String>> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(usage(format!("no ID token in {}", clean(whence))));
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}
