//! Mailboxes: send, page, delete (PROTOCOL §4, §4.1). The server checks only shapes and sizes;
//! it never sees a plaintext.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{HeaderName, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::bearer::Auth;
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::extract::{query_pairs, Fields, JsonBody};
use crate::limits::Action;
use crate::state::AppState;
use crate::store::{Cursor, NewMessage, SendRefused};
use crate::validate::{self, rfc3339};
use crate::wire;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send, list))
        .routes(routes!(delete))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SenderCopyWire {
    /// The same payload sealed to the sender's own newest key (PROTOCOL §3.4).
    ciphertext: String,
    #[serde(deserialize_with = "validate::integer")]
    key_version: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The recipient's user id.
    to: String,
    /// The sealed envelope (PROTOCOL §3.2), base64url.
    ciphertext: String,
    /// The recipient's key version the envelope was sealed to.
    #[serde(deserialize_with = "validate::integer")]
    key_version: i64,
    /// The sender's key version whose secret key made the inner box.
    #[serde(deserialize_with = "validate::integer")]
    sender_key_version: i64,
    sender_copy: Option<SenderCopyWire>,
}

impl Fields for SendRequest {
    const FIELDS: &'static [&'static str] = &[
        "to",
        "ciphertext",
        "key_version",
        "sender_key_version",
        "sender_copy",
    ];
    fn nested(field: &str) -> Option<&'static [&'static str]> {
        (field == "sender_copy").then_some(&["ciphertext", "key_version"])
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SendResponse {
    id: Uuid,
    seq: i64,
    created_at: String,
}

/// Send a sealed message.
#[utoipa::path(post, path = "/v1/messages", tag = "messages", security(("bearer" = [])), request_body = SendRequest,
    responses((status = 201, body = SendResponse), (status = 400), (status = 401), (status = 404),
        (status = 409, description = "stale_key: a key version is not the newest"), (status = 413)))]
async fn send(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(req): JsonBody<SendRequest>,
) -> ApiResult<(StatusCode, Json<SendResponse>)> {
    let max = state.limits.max_ciphertext;
    // The ciphertexts first: 413 ranks before every 400 of a field (PROTOCOL §4).
    let ciphertext = validate::ciphertext("ciphertext", &req.ciphertext, max)?;
    let copy = match &req.sender_copy {
        Some(c) => Some(validate::ciphertext(
            "sender_copy.ciphertext",
            &c.ciphertext,
            max,
        )?),
        None => None,
    };
    let to = validate::uuid("to", &req.to)?;
    let key_version = validate::key_version("key_version", req.key_version)?;
    let sender_key_version = validate::key_version("sender_key_version", req.sender_key_version)?;
    let sender_copy = match (copy, &req.sender_copy) {
        (Some(_), _) if to == auth.user_id => {
            return Err(ApiError::invalid(
                "sender_copy",
                "a note to self carries no sender_copy: it is already yours",
            ))
        }
        (Some(copy), Some(c)) => Some((
            copy,
            validate::key_version("sender_copy.key_version", c.key_version)?,
        )),
        _ => None,
    };
    state.rate.check_account(Action::Send, auth.user_id)?;
    let message = NewMessage {
        sender: auth.user_id,
        recipient: to,
        ciphertext,
        key_version,
        sender_key_version,
        sender_copy,
        now: now_ms(),
    };
    let (recipient, sender, with_copy) = (
        message.recipient,
        message.sender,
        message.sender_copy.is_some(),
    );
    let outcome = state.writer.send(message).await?;
    let entry = match outcome {
        Ok(entry) => entry,
        Err(SendRefused::UnknownRecipient) => {
            return Err(ApiError::NotFound { message: "no such recipient".into(), field: Some("to".into()) })
        }
        Err(SendRefused::SenderGone) => return Err(ApiError::unauthenticated("this account no longer exists")),
        Err(SendRefused::MailboxFull(field)) => {
            return Err(ApiError::Busy { field, retry_after: 60 })
        }
        Err(SendRefused::Stale(field)) => {
            return Err(ApiError::StaleKey {
                message: format!("{field} is not the newest key version: fetch the key again (and show the key change)")
                    .into(),
                field: field.into(),
            })
        }
    };
    state.hub.announce_stored(recipient);
    if with_copy {
        state.hub.announce_stored(sender);
    }
    let stored = if with_copy { 2 } else { 1 };
    state
        .metrics
        .messages_stored
        .fetch_add(stored, Ordering::Relaxed);
    Ok((
        StatusCode::CREATED,
        Json(SendResponse {
            id: entry.id,
            seq: entry.seq,
            created_at: rfc3339(entry.created_at),
        }),
    ))
}

/// A mailbox entry on the wire: the schema of what `wire` writes by hand (a test checks that the
/// two agree byte for byte).
#[derive(Debug, Serialize, ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct MessageWire {
    id: Uuid,
    seq: i64,
    from: Uuid,
    to: Uuid,
    ciphertext: String,
    key_version: i64,
    sender_key_version: i64,
    created_at: String,
}

#[cfg(test)]
impl From<&crate::store::Entry> for MessageWire {
    fn from(e: &crate::store::Entry) -> Self {
        use sealpost_crypto::b64;
        MessageWire {
            id: e.id,
            seq: e.seq,
            from: e.sender,
            to: e.recipient,
            ciphertext: b64::encode(&e.ciphertext),
            key_version: e.key_version,
            sender_key_version: e.sender_key_version,
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct MessagePage {
    messages: Vec<MessageWire>,
    /// With `after`: the last `seq` returned, or the given bound when the page is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<i64>,
    /// With `before`: the last `seq` returned, or the given bound when the page is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

#[cfg(test)]
impl MessagePage {
    pub(crate) fn new(
        messages: Vec<MessageWire>,
        entries: &[crate::store::Entry],
        cursor: Cursor,
    ) -> Self {
        let last = entries.last().map(|e| e.seq);
        let (next_after, next_before) = match cursor {
            Cursor::After(a) => (Some(last.unwrap_or(a)), None),
            Cursor::Before(b) => (None, Some(last.unwrap_or(b))),
        };
        MessagePage {
            messages,
            next_after,
            next_before,
        }
    }
}

/// A page of the caller's mailbox (the query, `after` or `before` and `limit`, is described in
/// `openapi::page_parameters`).
#[utoipa::path(get, path = "/v1/messages", tag = "messages", security(("bearer" = [])),
    responses((status = 200, body = MessagePage), (status = 400), (status = 401)))]
async fn list(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(query): RawQuery,
) -> ApiResult<([(HeaderName, HeaderValue); 1], Bytes)> {
    let (cursor, limit) = parse_page(query.as_deref().unwrap_or(""))?;
    let mailbox = auth.user_id;
    let json = |body| {
        (
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
    };
    // The newest page (a bound past the mailbox's last seq) may come from the cache, if the
    // mailbox has not changed since it was read.
    let cacheable = match cursor {
        Cursor::Before(bound) if state.pages.enabled() => state
            .store
            .mailbox_version(mailbox)
            .await?
            .filter(|v| bound > v.last_seq),
        _ => None,
    };
    if let Some(body) = cacheable.and_then(|v| state.pages.get(mailbox, v, limit)) {
        return Ok(json(body));
    }
    let entries = state.store.entries(mailbox, cursor, limit).await?;
    let body = Bytes::from(wire::page(&entries, cursor));
    if let (Some(version), false) = (cacheable, entries.is_empty()) {
        state.pages.put(mailbox, version, limit, body.clone());
    }
    Ok(json(body))
}

fn parse_page(query: &str) -> ApiResult<(Cursor, i64)> {
    let (mut after, mut before, mut limit) = (None, None, None);
    for (name, value) in query_pairs(query, &["after", "before", "limit"])? {
        let slot = match name.as_str() {
            "after" => &mut after,
            "before" => &mut before,
            _ => &mut limit,
        };
        let n: i64 = value
            .parse()
            .map_err(|_| ApiError::invalid(name.clone(), format!("{name} must be an integer")))?;
        *slot = Some(n);
    }
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must lie within 1..=200"));
    }
    let cursor = match (after, before) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "before",
                "give after or before, not both",
            ))
        }
        (Some(a), None) if a < 0 => {
            return Err(ApiError::invalid("after", "after must be 0 or more"))
        }
        (Some(a), None) => Cursor::After(a),
        (None, Some(b)) if b < 1 => {
            return Err(ApiError::invalid("before", "before must be 1 or more"))
        }
        (None, Some(b)) => Cursor::Before(b),
        (None, None) => Cursor::After(0),
    };
    Ok((cursor, limit))
}

/// Delete an entry of the caller's own mailbox.
#[utoipa::path(delete, path = "/v1/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 401), (status = 404)))]
async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let not_found = || ApiError::not_found("no such message in your mailbox");
    let id = validate::uuid("id", &id).map_err(|_| not_found())?;
    if !state.store.delete_entry(auth.user_id, id).await? {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_parameters() {
        assert!(matches!(parse_page(""), Ok((Cursor::After(0), 50))));
        assert!(matches!(
            parse_page("after=7&limit=200"),
            Ok((Cursor::After(7), 200))
        ));
        assert!(matches!(
            parse_page("before=9223372036854775807"),
            Ok((Cursor::Before(i64::MAX), 50))
        ));
        for bad in [
            "after=1&before=2",
            "limit=0",
            "limit=201",
            "after=x",
            "after=-1",
            "colour=red",
            "after=1&after=2",
        ] {
            assert!(
                matches!(parse_page(bad), Err(ApiError::Invalid { .. })),
                "{bad}"
            );
        }
    }
}
