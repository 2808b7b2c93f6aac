//! Agents in the console: create an agent (with a one-time password and a referral code), see
//! its tenants and commission by month, change its rate, disable or enable it, reset its
//! password, and mark a finished month's commission paid — as pages and as JSON.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use modelrouter_domain::agent::{check_month, normalize_referral_code, AgentCommand};
use modelrouter_domain::aggregate_types::AGENT;
use modelrouter_domain::tenant::normalize_email;
use modelrouter_domain::Money;
use modelrouter_projections::live::AgentEntry;
use modelrouter_projections::sql::commissions;
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::session::SignedInOperator;
use crate::crypto::{generate_password, hash_password};
use crate::gateway::{AppState, Caller, RequestId};
use crate::portal::format::{money, percent_bps};
use crate::portal::login::one_time_expiry;
use crate::portal::recharge::parse_amount;
use crate::portal::{render, Chrome, PortalError};
use crate::store::sessions::{self as store_sessions, Realm};
use crate::store::{release_email, reserve_email, reserve_referral_code, LoginKind};

pub fn pages() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/agents", get(list_page).post(create_submit))
        .route("/admin/agents/{id}", get(agent_page))
        .route("/admin/agents/{id}/commission", post(rate_submit))
        .route("/admin/agents/{id}/status", post(status_submit))
        .route("/admin/agents/{id}/password", post(password_submit))
        .route("/admin/agents/{id}/payouts", post(payout_submit))
}

pub use super::agents_api::{api, Api};

/// Reads a percentage with at most two decimals (`10`, `12.5`, `12.25`) as basis points.
pub fn parse_percent(text: &str) -> Option<u32> {
    let text = text.trim().trim_end_matches('%').trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || fraction.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}

/// A referral code made from the agent's name and four random characters: `ACME-7K2Q`.
fn generate_code(name: &str) -> String {
    let stem: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(10)
        .collect::<String>()
        .to_uppercase();
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..4)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    if stem.is_empty() {
        format!("AGENT-{tail}")
    } else {
        format!("{stem}-{tail}")
    }
}

async fn hash(password: String) -> Result<String, PortalError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(PortalError::internal)?
        .map_err(PortalError::internal)
}

/// An agent as the console lists it.
#[derive(Serialize, ToSchema)]
pub struct AgentSummary {
    agent_id: String,
    name: String,
    email: String,
    referral_code: String,
    commission_bps: u32,
    disabled: bool,
    tenants: usize,
    commission_this_month: i64,
    /// Commission of every month not marked paid.
    unpaid: i64,
}

async fn summary(
    state: &AppState,
    id: &str,
    agent: &AgentEntry,
) -> Result<AgentSummary, PortalError> {
    let this = crate::agent::this_month();
    let tenants = commissions::tenants_of(&state.db, id, &this).await?;
    let months = commissions::months_of(&state.db, id).await?;
    Ok(AgentSummary {
        agent_id: id.to_string(),
        name: agent.name.clone(),
        email: agent.email.clone(),
        referral_code: agent.referral_code.clone(),
        commission_bps: agent.commission_bps,
        disabled: agent.disabled,
        tenants: tenants.len(),
        commission_this_month: months
            .iter()
            .find(|m| m.month == this)
            .map_or(0, |m| m.commission),
        unpaid: months
            .iter()
            .filter(|m| m.paid.is_none())
            .map(|m| m.commission)
            .sum(),
    })
}

pub(super) async fn summaries(state: &AppState) -> Result<Vec<AgentSummary>, PortalError> {
    let mut agents: Vec<(String, AgentEntry)> = state
        .live
        .view()
        .agents
        .iter()
        .map(|(id, agent)| (id.clone(), agent.clone()))
        .collect();
    agents.sort_by(|a, b| a.1.name.cmp(&b.1.name).then(a.0.cmp(&b.0)));
    let mut out = Vec::with_capacity(agents.len());
    for (id, agent) in &agents {
        out.push(summary(state, id, agent).await?);
    }
    Ok(out)
}

/// What the console needs to create an agent.
#[derive(Deserialize, ToSchema)]
pub struct NewAgent {
    name: String,
    email: String,
    /// Basis points of referred tenants' settled usage: 1000 is 10 %.
    commission_bps: u32,
    /// Left empty, one is made from the name.
    #[serde(default)]
    referral_code: String,
}

/// A new agent and its one-time password, shown once.
#[derive(Serialize, ToSchema)]
pub struct CreatedAgent {
    agent_id: String,
    referral_code: String,
    password: String,
}

pub(super) async fn create(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    new: NewAgent,
) -> Result<CreatedAgent, PortalError> {
    let email = normalize_email(&new.email)
        .map_err(|_| PortalError::invalid("email", "Enter a valid email address."))?;
    let code = match new.referral_code.trim() {
        "" => generate_code(&new.name),
        given => given.to_string(),
    };
    let code = normalize_referral_code(&code).map_err(|_| {
        PortalError::invalid(
            "referral_code",
            "Use 4 to 32 letters, digits or dashes for the referral code.",
        )
    })?;
    let id = uuid::Uuid::new_v4().to_string();
    let password = generate_password();
    let password_hash = hash(password.clone()).await?;
    if !reserve_email(&state.db, &email, LoginKind::Agent, &id).await? {
        return Err(PortalError::invalid(
            "email",
            "This email already has a login (tenant, operator or agent).",
        ));
    }
    if !reserve_referral_code(&state.db, &code, &id).await? {
        release_email(&state.db, &email, &id).await?;
        return Err(PortalError::invalid(
            "referral_code",
            "Another agent has this referral code.",
        ));
    }
    let register = AgentCommand::Register {
        email: email.clone(),
        name: new.name,
        password_hash,
        commission_bps: new.commission_bps,
        referral_code: code.clone(),
        temporary: true,
        expires_at: Some(one_time_expiry(state)),
    };
    let metadata = operator.handle.metadata(request);
    if let Err(error) = state
        .commands
        .agents
        .execute(&id, register, &metadata)
        .await
    {
        release_email(&state.db, &email, &id).await?;
        release_email(&state.db, &format!("referral:{code}"), &id).await?;
        return Err(error.into());
    }
    state.live.include(&state.db, AGENT, &id).await?;
    Ok(CreatedAgent {
        agent_id: id,
        referral_code: code,
        password,
    })
}

fn agent_entry(state: &AppState, id: &str) -> Result<AgentEntry, PortalError> {
    state
        .live
        .view()
        .agents
        .get(id)
        .cloned()
        .ok_or(PortalError::NotFound)
}

pub(super) async fn execute(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    id: &str,
    command: AgentCommand,
) -> Result<(), PortalError> {
    agent_entry(state, id)?;
    state
        .commands
        .agents
        .execute(id, command, &operator.handle.metadata(request))
        .await?;
    state.live.include(&state.db, AGENT, id).await?;
    Ok(())
}

/// Disables or enables an agent; a disabled agent's sessions end and its code stops referring.
pub(super) async fn set_enabled(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    id: &str,
    enabled: bool,
) -> Result<(), PortalError> {
    let command = if enabled {
        AgentCommand::Enable
    } else {
        AgentCommand::Disable
    };
    execute(state, operator, request, id, command).await?;
    if !enabled {
        store_sessions::end_subject_sessions(&state.db, Realm::Agent, id, None).await?;
    }
    Ok(())
}

/// Gives the agent a new one-time password (to be changed at its first sign-in, refused after
/// `MODELROUTER_ONE_TIME_PASSWORD_HOURS`), ends its sessions and clears its sign-in lockout.
pub(super) async fn reset_password(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    id: &str,
) -> Result<String, PortalError> {
    let password = generate_password();
    let password_hash = hash(password.clone()).await?;
    execute(
        state,
        operator,
        request,
        id,
        AgentCommand::ChangePassword {
            password_hash,
            temporary: true,
            expires_at: Some(one_time_expiry(state)),
        },
    )
    .await?;
    store_sessions::end_subject_sessions(&state.db, Realm::Agent, id, None).await?;
    // A locked-out agent can use its new password at once.
    let email = agent_entry(state, id)?.email;
    store_sessions::clear_failures(&state.db, &format!("agent:email:{email}")).await?;
    Ok(password)
}

/// A payout recorded from the console: a finished month only, at most once.
#[derive(Deserialize, ToSchema)]
pub struct NewPayout {
    /// `YYYY-MM` (UTC); the current month is still accruing and cannot be paid yet.
    month: String,
    /// Micro-units paid out; normally the month's accrued commission.
    amount: i64,
    #[serde(default)]
    reference: String,
}

pub(super) async fn record_payout(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    id: &str,
    payout: NewPayout,
) -> Result<(), PortalError> {
    check_month(&payout.month)
        .map_err(|_| PortalError::invalid("month", "Give the month as YYYY-MM."))?;
    if payout.month >= crate::agent::this_month() {
        return Err(PortalError::invalid(
            "month",
            "Only a finished month can be marked paid; this one is still accruing.",
        ));
    }
    execute(
        state,
        operator,
        request,
        id,
        AgentCommand::RecordPayout {
            month: payout.month,
            amount: Money(payout.amount),
            reference: payout.reference,
        },
    )
    .await?;
    // The agent's statement shows the payout once the commissions projection has it.
    state.live.refresh(&state.db).await?;
    Ok(())
}

/// One referred tenant as operators see it (with the email agents never see).
#[derive(Serialize, ToSchema)]
pub struct AgentTenant {
    tenant_id: String,
    name: String,
    email: String,
    signed_up_at: String,
    spend_this_month: i64,
    spend_total: i64,
    commission_total: i64,
}

/// One month of an agent's commission.
#[derive(Serialize, ToSchema)]
pub struct AgentMonth {
    month: String,
    usage: i64,
    commission: i64,
    paid_amount: Option<i64>,
    paid_reference: Option<String>,
    paid_by: Option<String>,
    /// True for a finished month not yet marked paid.
    payable: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AgentDetail {
    #[serde(flatten)]
    summary: AgentSummary,
    tenants: Vec<AgentTenant>,
    months: Vec<AgentMonth>,
}

pub(super) async fn detail(state: &AppState, id: &str) -> Result<AgentDetail, PortalError> {
    let agent = agent_entry(state, id)?;
    let summary = summary(state, id, &agent).await?;
    let this = crate::agent::this_month();
    let tenants = commissions::tenants_of(&state.db, id, &this).await?;
    let months = commissions::months_of(&state.db, id).await?;
    let view = state.live.view();
    let tenants = tenants
        .into_iter()
        .map(|t| {
            let entry = view.tenants.get(&t.tenant_id);
            AgentTenant {
                name: entry.map(|e| e.name.clone()).unwrap_or_default(),
                email: entry.map(|e| e.email.clone()).unwrap_or_default(),
                tenant_id: t.tenant_id,
                signed_up_at: t.registered_at,
                spend_this_month: t.usage_month,
                spend_total: t.usage_total,
                commission_total: t.commission_total,
            }
        })
        .collect();
    let months = months
        .into_iter()
        .map(|m| AgentMonth {
            payable: m.paid.is_none() && m.month < this,
            paid_amount: m.paid.as_ref().map(|p| p.amount),
            paid_reference: m.paid.as_ref().map(|p| p.reference.clone()),
            paid_by: m.paid.map(|p| p.paid_by),
            month: m.month,
            usage: m.usage,
            commission: m.commission,
        })
        .collect();
    Ok(AgentDetail {
        summary,
        tenants,
        months,
    })
}

// ---- pages ----

#[derive(Template)]
#[template(path = "admin/agents.html")]
struct ListPage {
    chrome: Chrome,
    agents: Vec<AgentSummary>,
    form: AgentForm,
    error: Option<String>,
    currency: String,
}

impl ListPage {
    fn money(&self, micros: &i64) -> String {
        money(*micros)
    }
    fn rate(&self, bps: &u32) -> String {
        percent_bps(*bps)
    }
}

#[derive(Deserialize, Default)]
pub struct AgentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    commission: String,
    #[serde(default)]
    referral_code: String,
}

async fn list(
    state: &AppState,
    operator: &SignedInOperator,
    form: AgentForm,
    error: Option<String>,
) -> Result<ListPage, PortalError> {
    Ok(ListPage {
        chrome: operator.chrome("agents"),
        agents: summaries(state).await?,
        form,
        error,
        currency: state.settings.currency.clone(),
    })
}

pub async fn list_page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
) -> Result<Response, PortalError> {
    let page = list(&state, &operator, AgentForm::default(), None).await?;
    Ok(render(&page)?.into_response())
}

#[derive(Template)]
#[template(path = "admin/agent_created.html")]
struct CreatedPage {
    chrome: Chrome,
    name: String,
    email: String,
    created: CreatedAgent,
    link: String,
}

pub async fn create_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    operator: SignedInOperator,
    Form(form): Form<AgentForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let result = match parse_percent(&form.commission) {
        Some(bps) => {
            let new = NewAgent {
                name: form.name.clone(),
                email: form.email.clone(),
                commission_bps: bps,
                referral_code: form.referral_code.clone(),
            };
            create(&state, &operator, &request, new).await
        }
        None => Err(PortalError::invalid(
            "commission",
            "Give the commission as a percentage, like 10 or 12.5.",
        )),
    };
    match result {
        Ok(created) => {
            let base = crate::portal::models::base_url(&state, &caller);
            let page = CreatedPage {
                chrome: operator.chrome("agents"),
                link: format!("{base}/r/{}", created.referral_code),
                name: form.name,
                email: normalize_email(&form.email).unwrap_or(form.email),
                created,
            };
            Ok((StatusCode::CREATED, render(&page)?).into_response())
        }
        Err(error @ PortalError::Invalid { .. }) => {
            let message = error.to_string();
            let page = list(&state, &operator, form, Some(message)).await?;
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

#[derive(Template)]
#[template(path = "admin/agent.html")]
struct AgentPage {
    chrome: Chrome,
    a: AgentDetail,
    notice: Option<String>,
    error: Option<String>,
    password: Option<String>,
    currency: String,
}

impl AgentPage {
    fn money(&self, micros: &i64) -> String {
        money(*micros)
    }
    fn rate(&self, bps: &u32) -> String {
        percent_bps(*bps)
    }
    /// An amount as the payout form's default: the accrued commission in units.
    fn amount_input(&self, micros: &i64) -> String {
        Money(*micros).to_string()
    }
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

fn notice_text(code: Option<&str>) -> Option<String> {
    let text = match code? {
        "rate" => "The commission rate was changed. It applies to usage settled from now on.",
        "disabled" => "The agent is disabled: it cannot sign in and its code refers no one.",
        "enabled" => "The agent is enabled again.",
        "paid" => "The month is marked paid.",
        _ => return None,
    };
    Some(text.to_string())
}

async fn agent_view(
    state: &AppState,
    operator: &SignedInOperator,
    id: &str,
) -> Result<AgentPage, PortalError> {
    Ok(AgentPage {
        chrome: operator.chrome("agents"),
        a: detail(state, id).await?,
        notice: None,
        error: None,
        password: None,
        currency: state.settings.currency.clone(),
    })
}

pub async fn agent_page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let mut page = agent_view(&state, &operator, &id).await?;
    page.notice = notice_text(query.notice.as_deref());
    Ok(render(&page)?.into_response())
}

/// Re-renders the agent page with a form's error, or returns the other error.
async fn with_error(
    state: &AppState,
    operator: &SignedInOperator,
    id: &str,
    error: PortalError,
) -> Result<Response, PortalError> {
    match error {
        PortalError::Invalid { .. } => {
            let mut page = agent_view(state, operator, id).await?;
            page.error = Some(error.to_string());
            Ok((error.status(), render(&page)?).into_response())
        }
        other => Err(other),
    }
}

#[derive(Deserialize)]
pub struct RateForm {
    csrf: String,
    commission: String,
}

pub async fn rate_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<RateForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let result = match parse_percent(&form.commission) {
        Some(bps) => {
            let command = AgentCommand::SetCommission {
                commission_bps: bps,
            };
            execute(&state, &operator, &request, &id, command).await
        }
        None => Err(PortalError::invalid(
            "commission",
            "Give the commission as a percentage, like 10 or 12.5.",
        )),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/admin/agents/{id}?notice=rate")).into_response()),
        Err(error) => with_error(&state, &operator, &id, error).await,
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    csrf: String,
    /// `enable` or `disable`.
    action: String,
}

pub async fn status_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<StatusForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let enable = form.action == "enable";
    set_enabled(&state, &operator, &request, &id, enable).await?;
    let notice = if enable { "enabled" } else { "disabled" };
    Ok(Redirect::to(&format!("/admin/agents/{id}?notice={notice}")).into_response())
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn password_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let password = reset_password(&state, &operator, &request, &id).await?;
    let mut page = agent_view(&state, &operator, &id).await?;
    page.password = Some(password);
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct PayoutForm {
    csrf: String,
    month: String,
    amount: String,
    #[serde(default)]
    reference: String,
}

pub async fn payout_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<PayoutForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let result = match parse_amount(&form.amount) {
        Some(amount) => {
            let payout = NewPayout {
                month: form.month,
                amount: amount.0,
                reference: form.reference,
            };
            record_payout(&state, &operator, &request, &id, payout).await
        }
        None => Err(PortalError::invalid(
            "amount",
            "Give the amount paid as a number, like 12.50.",
        )),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/admin/agents/{id}?notice=paid")).into_response()),
        Err(error) => with_error(&state, &operator, &id, error).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_as_basis_points() {
        assert_eq!(parse_percent("10"), Some(1000));
        assert_eq!(parse_percent("12.5"), Some(1250));
        assert_eq!(parse_percent("12.25 %"), Some(1225));
        assert_eq!(parse_percent("0"), Some(0));
        assert_eq!(parse_percent("1.234"), None);
        assert_eq!(parse_percent("-1"), None);
        assert_eq!(parse_percent(""), None);
    }

    #[test]
    fn generated_codes_are_valid_referral_codes() {
        for name in ["Acme Resellers", "", "日本"] {
            let code = generate_code(name);
            assert_eq!(normalize_referral_code(&code).ok(), Some(code.clone()));
        }
    }
}
