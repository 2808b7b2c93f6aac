//! Email verification: the link mailed at sign-up (and again when the tenant asks), following it,
//! and the trial credit it unlocks — as pages and as JSON. Where no SMTP server is configured and
//! the outbox is shown in the portal (`--demo`, tests), the tenant's mail is listed at
//! `/portal/mail` and the dashboard offers the link itself.
//!
//! A tenant works before verifying (it signs in, makes keys, tops up); only the sign-up credit
//! waits. Following a link records `EmailVerified` on the Tenant (once: the aggregate records
//! nothing the second time) and credits the sign-up credit with the tenant's id as the credit's
//! reference, which the Account credits at most once — so two clicks, even at the same moment on
//! two replicas, credit once. A link is marked used only after both are recorded: a crash in
//! between leaves it working, and following it again finishes the job.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use chrono::Utc;
use modelrouter_domain::account::{AccountCommand, CreditKind, CreditSource};
use modelrouter_domain::aggregate_types as types;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::tenant::TenantCommand;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::account::CsrfForm;
use super::session::{ApiWriter, SignedIn};
use super::{format, render, Chrome, PortalError};
use crate::gateway::{AppState, Caller, RequestId};
use crate::mail::{self, Mail};
use crate::store::sessions::count_within_limit;
use crate::store::verifications;

/// How long a verification link works.
pub const LINK_TTL: Duration = Duration::from_secs(24 * 3600);
/// Verification mails one tenant may be sent per [`MAIL_WINDOW`] (the sign-up's counts).
pub const MAILS_PER_WINDOW: u32 = 3;
pub const MAIL_WINDOW: Duration = Duration::from_secs(3600);

/// Mails a new verification link to the tenant, within [`MAILS_PER_WINDOW`].
async fn send_link(
    state: &AppState,
    caller: &Caller,
    tenant_id: &str,
    email: &str,
) -> Result<(), PortalError> {
    let now = Utc::now();
    let subject = format!("verify-mail:{tenant_id}");
    if let Some(until) =
        count_within_limit(&state.db, &subject, now, MAILS_PER_WINDOW, MAIL_WINDOW).await?
    {
        return Err(PortalError::Throttled {
            what: "We have already sent you several verification emails: check your inbox \
                   (and spam folder) for the newest one.",
            until,
        });
    }
    let expires_at = now + chrono::Duration::from_std(LINK_TTL).unwrap_or_default();
    let token = verifications::issue(&state.db, tenant_id, email, now, expires_at).await?;
    let link = format!(
        "{}/portal/verify-email?token={token}",
        super::models::base_url(state, caller)
    );
    let credit = state.settings.signup_credit;
    let reward = if credit.is_positive() {
        format!(
            "Once you do, your trial credit of {} {} is added to your balance.\n\n",
            format::money(credit.0),
            state.settings.currency
        )
    } else {
        String::new()
    };
    let mail = Mail {
        to: email.to_string(),
        subject: "Confirm your email for Model Router".into(),
        body: format!(
            "Hello,\n\nPlease confirm that {email} is your email address by opening this link \
             within 24 hours:\n\n{link}\n\n{reward}If you did not sign up for Model Router, \
             ignore this email.\n"
        ),
        action_url: Some(link),
    };
    mail::send(&state.settings.mail, &state.db, Some(tenant_id), mail)
        .await
        .map_err(PortalError::internal)
}

/// Mails the first link after a sign-up. A mail that cannot leave now does not undo the
/// sign-up: it is logged, and the tenant can ask for the link again from its dashboard.
pub async fn after_sign_up(state: &AppState, caller: &Caller, tenant_id: &str, email: &str) {
    if let Err(error) = send_link(state, caller, tenant_id, email).await {
        tracing::warn!(%error, tenant_id, "verification mail not sent at sign-up");
    }
}

/// Mails a new link to a signed-in tenant whose email is not verified yet.
async fn resend(
    state: &AppState,
    caller: &Caller,
    signed_in: &SignedIn,
) -> Result<(), PortalError> {
    let view = state.live.view();
    let tenant = signed_in
        .scope
        .tenant(&view)
        .ok_or(PortalError::SignedOut)?;
    if !tenant.email_unverified {
        return Err(PortalError::invalid(
            "email",
            "Your email is already verified.",
        ));
    }
    send_link(state, caller, signed_in.scope.tenant_id(), &tenant.email).await
}

/// What following a link did.
#[derive(Serialize, ToSchema)]
pub struct Verified {
    tenant_id: String,
    email: String,
    /// The link had been followed before: nothing new was recorded.
    already_verified: bool,
    /// The sign-up credit this verification unlocks, micro-units (0 when none is offered).
    trial_credit: i64,
}

/// Follows a link: verifies the tenant's email and credits the sign-up credit, each at most once.
async fn verify(
    state: &AppState,
    token: &str,
    request: &RequestId,
) -> Result<Verified, PortalError> {
    let invalid = || {
        PortalError::invalid(
            "token",
            "This verification link is not valid. Open the newest link we sent you, or sign in \
             and ask for a new one.",
        )
    };
    let link = verifications::find(&state.db, token.trim())
        .await?
        .ok_or_else(invalid)?;
    let credit = state.settings.signup_credit;
    let trial_credit = if credit.is_positive() { credit.0 } else { 0 };
    if link.used {
        return Ok(Verified {
            tenant_id: link.tenant_id,
            email: link.email,
            already_verified: true,
            trial_credit,
        });
    }
    let now = Utc::now();
    if link.expires_at <= now {
        return Err(PortalError::invalid(
            "token",
            "This verification link has expired. Sign in and ask for a new one on your \
             dashboard.",
        ));
    }
    let id = link.tenant_id.as_str();
    let metadata = Metadata::new(&Actor::Tenant(id.to_string())).request_id(&request.id);
    let metadata = match &request.client_ip {
        Some(ip) => metadata.client_ip(ip),
        None => metadata,
    };
    state
        .commands
        .tenants
        .execute(id, TenantCommand::VerifyEmail, &metadata)
        .await?;
    if credit.is_positive() {
        // The tenant's id is the reference: the Account credits it once, however often asked.
        let command = AccountCommand::Credit {
            amount: credit,
            source: CreditSource {
                kind: CreditKind::Signup,
                reference: id.to_string(),
            },
        };
        state
            .commands
            .accounts
            .execute(id, command, &metadata)
            .await?;
    }
    verifications::mark_used(&state.db, token.trim(), now).await?;
    state.live.include(&state.db, types::TENANT, id).await?;
    if credit.is_positive() {
        // The dashboard the tenant goes to next shows the credited balance.
        state.live.include(&state.db, types::ACCOUNT, id).await?;
        state.live.refresh(&state.db).await?;
    }
    Ok(Verified {
        tenant_id: link.tenant_id,
        email: link.email,
        already_verified: false,
        trial_credit,
    })
}

/// The dashboard's reminder while the tenant's email waits for verification.
pub struct PendingVerification {
    pub email: String,
    /// The trial credit waiting for it, formatted, when one is offered.
    pub credit: Option<String>,
    /// The newest verification link from the outbox, where the portal shows it (the demo).
    pub outbox_link: Option<String>,
}

/// The reminder for a signed-in tenant, if its email is not verified yet.
pub async fn pending(
    state: &AppState,
    signed_in: &SignedIn,
) -> Result<Option<PendingVerification>, PortalError> {
    let email = match signed_in.scope.tenant(&state.live.view()) {
        Some(tenant) if tenant.email_unverified => tenant.email.clone(),
        _ => return Ok(None),
    };
    let credit = state.settings.signup_credit;
    let outbox_link = if state.settings.mail.outbox_in_portal {
        signed_in
            .scope
            .outbox(&state.db, 10)
            .await?
            .into_iter()
            .find_map(|mail| mail.action_url)
    } else {
        None
    };
    Ok(Some(PendingVerification {
        email,
        credit: credit
            .is_positive()
            .then(|| format!("{} {}", format::money(credit.0), state.settings.currency)),
        outbox_link,
    }))
}

// ---- pages ----

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Template)]
#[template(path = "portal/email_verified.html")]
struct VerifiedPage {
    email: String,
    already_verified: bool,
    trial_credit: Option<String>,
}

/// `GET /portal/verify-email?token=…`: the link in the mail. It works signed in or not (the mail
/// may be opened in another browser).
pub async fn verify_page(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, PortalError> {
    let verified = verify(&state, &query.token, &request).await?;
    let page = VerifiedPage {
        email: verified.email,
        already_verified: verified.already_verified,
        trial_credit: (verified.trial_credit > 0).then(|| {
            format!(
                "{} {}",
                format::money(verified.trial_credit),
                state.settings.currency
            )
        }),
    };
    Ok(render(&page)?.into_response())
}

/// `POST /portal/verify-email/resend`: another link, within the limit.
pub async fn resend_submit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PortalError> {
    signed_in.verify_csrf(&form.csrf)?;
    resend(&state, &caller, &signed_in).await?;
    Ok(Redirect::to("/portal?notice=verification_sent").into_response())
}

#[derive(Template)]
#[template(path = "portal/mail.html")]
struct MailPage {
    chrome: Chrome,
    mails: Vec<MailRow>,
}

struct MailRow {
    sent_at: String,
    recipient: String,
    subject: String,
    body: String,
    action_url: Option<String>,
}

/// `GET /portal/mail`: the tenant's mail from the outbox, where the portal shows it.
pub async fn mail_page(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
) -> Result<Response, PortalError> {
    if !state.settings.mail.outbox_in_portal {
        return Err(PortalError::NotFound);
    }
    let mails = signed_in.scope.outbox(&state.db, 50).await?;
    let page = MailPage {
        chrome: Chrome::new(&signed_in, "mail"),
        mails: mails
            .into_iter()
            .map(|mail| MailRow {
                sent_at: mail.created_at.format("%Y-%m-%d %H:%M").to_string(),
                recipient: mail.recipient,
                subject: mail.subject,
                body: mail.body,
                action_url: mail.action_url,
            })
            .collect(),
    };
    Ok(render(&page)?.into_response())
}

// ---- JSON ----

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The `token` of the link in the verification mail.
    token: String,
}

#[utoipa::path(post, path = "/api/portal/verify-email", tag = "account",
    request_body = VerifyRequest,
    security(()),
    responses((status = 200, body = Verified, description = "The email is verified; the trial credit, if any, is credited (once)"),
              (status = 422, description = "Unknown or expired link")))]
pub async fn api_verify(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    Json(body): Json<VerifyRequest>,
) -> Result<Json<Verified>, PortalError> {
    Ok(Json(verify(&state, &body.token, &request).await?))
}

#[utoipa::path(post, path = "/api/portal/verify-email/resend", tag = "account",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "A new verification link was mailed"),
              (status = 422, description = "The email is already verified"),
              (status = 429, description = "Too many verification mails lately; see Retry-After")))]
pub async fn api_resend(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiWriter(signed_in): ApiWriter,
) -> Result<StatusCode, PortalError> {
    resend(&state, &caller, &signed_in).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A mail from the outbox.
#[derive(Serialize, ToSchema)]
pub struct OutboxEntry {
    sent_at: chrono::DateTime<Utc>,
    to: String,
    subject: String,
    body: String,
    /// The link the mail asks its reader to follow.
    action_url: Option<String>,
}

#[utoipa::path(get, path = "/api/portal/mail", tag = "account",
    responses((status = 200, body = Vec<OutboxEntry>, description = "The tenant's mail, newest first"),
              (status = 404, description = "The outbox is not shown in the portal (mail goes out by SMTP)")))]
pub async fn api_mail(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
) -> Result<Json<Vec<OutboxEntry>>, PortalError> {
    if !state.settings.mail.outbox_in_portal {
        return Err(PortalError::NotFound);
    }
    let mails = signed_in.scope.outbox(&state.db, 50).await?;
    Ok(Json(
        mails
            .into_iter()
            .map(|mail| OutboxEntry {
                sent_at: mail.created_at,
                to: mail.recipient,
                subject: mail.subject,
                body: mail.body,
                action_url: mail.action_url,
            })
            .collect(),
    ))
}
