//! API key authentication from the in-memory key lookup: `Authorization: Bearer <key>` (or
//! `x-api-key`), hashed with SHA-256 and looked up; revoked, expired and suspended keys fail.

use axum::http::HeaderMap;
use modelrouter_domain::tenant::TenantStatus;
use modelrouter_projections::live::{KeyEntry, LiveView};

use super::ApiError;
use crate::crypto::hash_api_key;

/// The key a request presents, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        let key = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value)
            .trim();
        return (!key.is_empty()).then_some(key);
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Authenticates a request against the view.
pub fn authenticate<'v>(view: &'v LiveView, headers: &HeaderMap) -> Result<&'v KeyEntry, ApiError> {
    let key = presented_key(headers).ok_or(ApiError::MissingKey)?;
    let entry = view
        .keys
        .get(&hash_api_key(key))
        .filter(|entry| entry.usable_at(chrono::Utc::now()))
        .ok_or(ApiError::InvalidKey)?;
    match view.tenants.get(&entry.tenant_id) {
        Some(tenant) if tenant.status == TenantStatus::Active => Ok(entry),
        Some(_) => Err(ApiError::Suspended),
        None => Err(ApiError::InvalidKey),
    }
}
