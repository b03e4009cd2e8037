//! The tenant's suppression list on the API, with a key holding `suppressions:manage`:
//!
//! - `GET /v1/suppressions?reason=&after=&cursor=&limit=`: a page (by address) and `nextCursor`;
//! - `GET /v1/suppressions/export`: every entry, NDJSON;
//! - `GET|PUT|DELETE /v1/suppressions/{address}`: one entry; `PUT` takes
//!   `{"reason": "manual"|"bounce"|"complaint", "expiresAt": RFC 3339, "detail": text}` (all
//!   optional);
//! - `POST /v1/suppressions/import`: NDJSON lines `{"address", "reason", "expiresAt", "detail"}`.
//!
//! A key sees and changes its own tenant's list only. Every change is audited
//! (`suppression.added`, `suppression.removed`; addresses masked).

use super::invalid;
use crate::config::SCOPE_SUPPRESSIONS_MANAGE;
use crate::http::Answer;
use crate::relay::{mask, Relay};
use crate::suppression::{normalize, Entry, REASONS};
use serde::Deserialize;
use std::net::IpAddr;

/// At most this many lines in one import.
pub const MAX_IMPORT: usize = 100_000;

pub fn routes(path: &str) -> bool {
    let p = path.split('?').next().unwrap_or_default();
    p == "/v1/suppressions" || p.starts_with("/v1/suppressions/")
}

pub fn authorize(relay: &Relay, authorization: Option<&str>, peer: IpAddr) -> Result<String, Answer> {
    super::authorize_for(relay, authorization, peer, SCOPE_SUPPRESSIONS_MANAGE)
}

fn tenant_of(relay: &Relay, key: &str) -> String {
    relay.runtime().keys.get(key).map(|k| k.tenant.clone()).unwrap_or_default()
}

/// The address a path names (percent-decoded), checked.
fn address_of(path: &str) -> Result<String, Answer> {
    let raw = path.split('?').next().unwrap_or_default().strip_prefix("/v1/suppressions/").unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().map_err(|_| invalid("/address: not UTF-8"))?;
    match crate::smtp::command::parse_address(&decoded) {
        Ok(a) if !a.is_null() && decoded.len() <= 320 => Ok(normalize(&a.to_string())),
        _ => Err(invalid("/address: not an address (local-part@domain)")),
    }
}

fn not_found() -> Answer {
    Answer::problem(404, "Not Found", "this address is not on the tenant's suppression list")
}

/// `GET`s: a page, the export, or one entry.
pub fn read(relay: &Relay, path: &str, key: &str) -> Answer {
    let tenant = tenant_of(relay, key);
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    match route {
        "/v1/suppressions" => {
            let q: std::collections::HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100).clamp(1, 1000);
            let after = match q.get("after") {
                Some(t) => match cascade_core::time::parse_rfc3339(t) {
                    Some(t) => Some(t),
                    None => return invalid("after: not an RFC 3339 time"),
                },
                None => None,
            };
            if let Some(r) = q.get("reason").filter(|r| !REASONS.contains(&r.as_str())) {
                return invalid(format!("reason: {r:?} is not one of {}", REASONS.join(", ")));
            }
            let (items, next) = relay.suppressions.list(&tenant, q.get("reason").map(String::as_str), after, q.get("cursor").map(String::as_str), limit);
            let items: Vec<_> = items.iter().map(crate::suppression::view).collect();
            Answer::json(200, &serde_json::json!({ "items": items, "nextCursor": next }))
        }
        "/v1/suppressions/export" => {
            let (items, _) = relay.suppressions.list(&tenant, None, None, None, usize::MAX - 1);
            let body: String = items.iter().map(|e| format!("{}\n", crate::suppression::view(e))).collect();
            Answer { status: 200, content_type: "application/x-ndjson", body, retry_after: None, replayed: false }
        }
        _ => match address_of(path) {
            Ok(a) => relay.suppressions.get(&tenant, &a, cascade_core::time::now_unix()).map_or_else(not_found, |e| Answer::json(200, &crate::suppression::view(&e))),
            Err(refusal) => refusal,
        },
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Put {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// An entry from a request: `field` prefixes the JSON pointers of its refusals.
fn entry(address: String, p: Put, field: &str) -> Result<Entry, Answer> {
    let reason = p.reason.unwrap_or_else(|| "manual".into());
    if !REASONS.contains(&reason.as_str()) {
        return Err(invalid(format!("{field}/reason: {reason:?} is not one of {}", REASONS.join(", "))));
    }
    let now = cascade_core::time::now_unix();
    let expires = match p.expires_at {
        Some(t) => Some(cascade_core::time::parse_rfc3339(&t).filter(|t| *t > now).ok_or_else(|| invalid(format!("{field}/expiresAt: not an RFC 3339 time in the future")))?),
        None => None,
    };
    if p.detail.as_ref().is_some_and(|d| d.len() > 300 || d.chars().any(char::is_control)) {
        return Err(invalid(format!("{field}/detail: at most 300 bytes, no control characters")));
    }
    Ok(Entry { address, reason, created: now, message_id: None, expires, detail: p.detail })
}

/// `PUT`, `DELETE` and the import. Blocking.
pub fn change(relay: &Relay, method: &hyper::Method, path: &str, key: &str, body: &[u8], peer: IpAddr) -> Answer {
    let tenant = tenant_of(relay, key);
    let answer = match (method.as_str(), path.split('?').next().unwrap_or_default()) {
        ("POST", "/v1/suppressions/import") => import(relay, &tenant, key, body),
        ("PUT", p) if p != "/v1/suppressions" => match address_of(path).and_then(|a| {
            let put: Put = if body.is_empty() { Put::default() } else { serde_json::from_slice(body).map_err(|e| invalid(format!("/: {e}")))? };
            if put.address.is_some() {
                return Err(invalid("/address: the address is the path's"));
            }
            entry(a, put, "")
        }) {
            Ok(e) => put(relay, &tenant, key, e),
            Err(refusal) => refusal,
        },
        ("DELETE", p) if p != "/v1/suppressions" => match address_of(path) {
            Ok(a) => match relay.suppressions.remove(relay, &tenant, &a) {
                Ok(true) => {
                    relay.audit.record("suppression.removed", serde_json::json!({ "tenant": tenant, "address": mask(&a), "key": key }));
                    Answer { status: 204, content_type: "text/plain", body: String::new(), retry_after: None, replayed: false }
                }
                Ok(false) => not_found(),
                Err(e) => unavailable(e),
            },
            Err(refusal) => refusal,
        },
        _ => Answer::problem(405, "Method Not Allowed", "GET, PUT or DELETE /v1/suppressions/{address}; POST /v1/suppressions/import"),
    };
    relay.audit.record("api.request", serde_json::json!({ "path": "/v1/suppressions", "method": method.as_str(), "key": key, "client": peer.to_string(), "status": answer.status }));
    answer
}

fn unavailable(e: String) -> Answer {
    tracing::error!(error = %e, "suppression list not writable");
    Answer::problem(503, "Service Unavailable", "the suppression list cannot be changed just now; retry").retry_after(5)
}

fn put(relay: &Relay, tenant: &str, key: &str, e: Entry) -> Answer {
    let (address, reason) = (e.address.clone(), e.reason.clone());
    match relay.suppressions.put(relay, tenant, e) {
        Ok(created) => {
            relay.audit.record("suppression.added", serde_json::json!({ "tenant": tenant, "address": mask(&address), "reason": reason, "key": key }));
            let view = relay.suppressions.get(tenant, &address, cascade_core::time::now_unix()).map(|e| crate::suppression::view(&e)).unwrap_or_default();
            Answer::json(if created { 201 } else { 200 }, &view)
        }
        Err(why) if why.contains("limit") => Answer::problem(422, "Unprocessable Content", why),
        Err(why) => unavailable(why),
    }
}

fn import(relay: &Relay, tenant: &str, key: &str, body: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(body);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > MAX_IMPORT {
        return invalid(format!("/: more than {MAX_IMPORT} lines"));
    }
    let (mut valid, mut errors) = (Vec::new(), Vec::new());
    for (i, line) in lines.iter().enumerate() {
        let field = format!("/{i}");
        let parsed = serde_json::from_str::<Put>(line).map_err(|e| invalid(format!("{field}: {e}"))).and_then(|p| {
            let address = p.address.clone().ok_or_else(|| invalid(format!("{field}/address: required")))?;
            let a = crate::smtp::command::parse_address(&address).ok().filter(|a| !a.is_null()).ok_or_else(|| invalid(format!("{field}/address: not an address")))?;
            entry(normalize(&a.to_string()), p, &field)
        });
        match parsed {
            Ok(e) => valid.push(e),
            Err(a) => errors.push(serde_json::json!({ "line": i + 1, "detail": serde_json::from_str::<serde_json::Value>(&a.body).ok().and_then(|v| v["detail"].as_str().map(String::from)) })),
        }
    }
    // One durable write for the whole import.
    let imported = match relay.suppressions.put_all(relay, tenant, valid) {
        Ok((taken, refused)) => {
            errors.extend(refused.into_iter().map(|why| serde_json::json!({ "line": null, "detail": why })));
            taken.len()
        }
        Err(why) => return unavailable(why),
    };
    relay.audit.record("suppression.imported", serde_json::json!({ "tenant": tenant, "key": key, "imported": imported, "refused": errors.len() }));
    Answer::json(200, &serde_json::json!({ "imported": imported, "errors": errors }))
}
