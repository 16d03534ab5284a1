//! Blobs (signature images, photos) stored by SHA-256: uploads are
//! idempotent and verified; the size is limited. A blob belongs to the
//! tickets that refer to it: only someone who may read one of them may
//! download it, and an upload is answered the same whether or not the
//! server held the bytes before.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sync_protocol::{MAX_BLOB_BYTES, Sha256Hex, TicketAccess};

use super::{ApiError, ApiPath, AppState, Caller};
use crate::writer::{Command, Reply};

pub async fn upload(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(hash): ApiPath<String>,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require_technician()?;
    let hash = parse_hash(&hash)?;
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BLOB_BYTES)
        .await
        .map_err(|error| {
            if is_length_limit(&error) {
                ApiError::payload_too_large(MAX_BLOB_BYTES)
            } else {
                ApiError::bad_request("body_read_failed", "the upload did not arrive whole")
            }
        })?;
    let actual = Sha256Hex::of(&bytes);
    if actual != hash {
        return Err(ApiError::bad_request(
            "blob_hash_mismatch",
            "the body's SHA-256 is not the one in the path",
        )
        .with_details(json!({ "expected": hash, "actual": actual })));
    }
    let command = Command::PutBlob {
        by: caller.user,
        hash,
        bytes: bytes.to_vec(),
    };
    match state.writer.submit(command).await? {
        Reply::Blob(receipt) => Ok((StatusCode::OK, Json(receipt)).into_response()),
        _ => Err(ApiError::Internal(
            "blob upload got another reply".to_owned(),
        )),
    }
}

/// Most referring tickets a download looks at: one readable is enough.
const REFERRERS_CHECKED: usize = 64;

/// A signature or photo, for whoever may read a ticket that refers to it.
pub async fn download(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(hash): ApiPath<String>,
) -> Result<Response, ApiError> {
    // Missing, unreferenced, or only another estate's: the same answer.
    let not_found = || ApiError::not_found("blob_not_found", "no blob with that hash");
    let hash = parse_hash(&hash)?;
    // Readable through a ticket the caller may read whose fact refers to
    // the blob, and only if the fact's recorder uploaded these bytes: naming
    // a hash in a fact does not open someone else's image.
    let mut readable = false;
    'referrers: for ticket_id in state.store.blob_referrers(&hash, REFERRERS_CHECKED)? {
        let Some(ticket) = state.store.ticket(&ticket_id)? else {
            continue;
        };
        if caller.access(&ticket) != TicketAccess::Readable {
            continue;
        }
        for (blob, recorder) in ticket.blob_references() {
            if blob == &hash && state.store.uploaded_by(&hash, recorder)? {
                readable = true;
                break 'referrers;
            }
        }
    }
    if !readable {
        return Err(not_found());
    }
    let bytes = state.store.blob(&hash)?.ok_or_else(not_found)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

fn parse_hash(raw: &str) -> Result<Sha256Hex, ApiError> {
    Sha256Hex::parse(raw).map_err(|e| ApiError::bad_request("invalid_hash", e.to_string()))
}
