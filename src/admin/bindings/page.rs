//! The routes' pages: every model's binding at a glance, and one model's editor — deployment
//! rows (a few empty ones to add more), the retry and fallback policy, and the rollout.

use super::*;

/// One line of a summary: a deployment in words.
fn describe(d: &DeploymentView) -> String {
    let off = if d.provider_enabled {
        ""
    } else {
        " — provider disabled"
    };
    format!(
        "{} / {} ({}) · weight {} · tier {}{off}",
        d.provider, d.upstream_model, d.region, d.weight, d.priority
    )
}

fn describe_retry(retry: &RetrySpec) -> String {
    let mut on = Vec::new();
    for (yes, name) in [
        (retry.retry_on.rate_limit, "429"),
        (retry.retry_on.server_error, "5xx"),
        (retry.retry_on.timeout, "timeouts"),
        (retry.retry_on.connect, "connection failures"),
    ] {
        if yes {
            on.push(name);
        }
    }
    let on = if on.is_empty() {
        "nothing".to_string()
    } else {
        on.join(", ")
    };
    let fallback = if retry.fallback {
        "with fallback tiers"
    } else {
        "first tier only"
    };
    format!("{} attempts, retrying {on}, {fallback}", retry.max_attempts)
}

struct RouteRow {
    model: String,
    display_name: String,
    bound: bool,
    deployments: Vec<String>,
    retry: String,
    rollout: String,
}

#[derive(Template)]
#[template(path = "admin/routes.html")]
struct RoutesPage {
    chrome: Chrome,
    routes: Vec<RouteRow>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
) -> Result<Response, PortalError> {
    let view = state.live.view();
    let routes = view
        .models
        .keys()
        .map(|model| {
            let route = route_view(&view, model)?;
            Ok(RouteRow {
                model: route.model,
                display_name: route.display_name,
                bound: route.bound,
                deployments: route.deployments.iter().map(describe).collect(),
                retry: describe_retry(&route.retry),
                rollout: route.rollout.map_or_else(String::new, |r| {
                    format!("{} % of keys on a candidate", r.percent)
                }),
            })
        })
        .collect::<Result<_, PortalError>>()?;
    rendered(
        StatusCode::OK,
        &RoutesPage {
            chrome: chrome(&operator),
            routes,
        },
    )
}

/// A deployment row of a form, as entered.
#[derive(Default, Clone)]
pub struct Row {
    provider: String,
    upstream_model: String,
    region: String,
    weight: String,
    priority: String,
}

/// Empty rows under the filled ones, to add deployments without script.
const EMPTY_ROWS: usize = 3;

fn rows_of(deployments: &[Deployment]) -> Vec<Row> {
    deployments
        .iter()
        .map(|d| Row {
            provider: d.provider.clone(),
            upstream_model: d.upstream_model.clone(),
            region: d.region.clone().unwrap_or_default(),
            weight: d.weight.to_string(),
            priority: d.priority.to_string(),
        })
        .chain(std::iter::repeat_n(Row::default(), EMPTY_ROWS))
        .collect()
}

/// The rows of a form: each column arrives as a list, one entry per row.
struct Columns<'a> {
    provider: &'a [String],
    upstream_model: &'a [String],
    region: &'a [String],
    weight: &'a [String],
    priority: &'a [String],
}

impl Columns<'_> {
    fn rows(&self) -> Vec<Row> {
        let at = |column: &[String], i: usize| column.get(i).cloned().unwrap_or_default();
        (0..self.provider.len().max(self.upstream_model.len()))
            .map(|i| Row {
                provider: at(self.provider, i),
                upstream_model: at(self.upstream_model, i),
                region: at(self.region, i),
                weight: at(self.weight, i),
                priority: at(self.priority, i),
            })
            .collect()
    }

    /// The filled rows as deployments; rows with neither provider nor upstream model are empty
    /// and skipped.
    fn specs(&self, field: &'static str) -> Result<Vec<DeploymentSpec>, PortalError> {
        let number = |text: &str, default: u32, what: &str, n: usize| {
            let text = text.trim();
            if text.is_empty() {
                return Ok(default);
            }
            text.parse::<u32>().map_err(|_| {
                PortalError::invalid(
                    field,
                    format!("Row {n}: enter the {what} as a whole number (0 or more)."),
                )
            })
        };
        let mut specs = Vec::new();
        for (i, row) in self.rows().into_iter().enumerate() {
            let n = i + 1;
            if row.provider.trim().is_empty() && row.upstream_model.trim().is_empty() {
                continue;
            }
            if row.provider.trim().is_empty() || row.upstream_model.trim().is_empty() {
                return Err(PortalError::invalid(
                    field,
                    format!("Row {n}: choose a provider and enter the upstream model."),
                ));
            }
            specs.push(DeploymentSpec {
                provider: row.provider.clone(),
                upstream_model: row.upstream_model.clone(),
                region: Some(row.region.clone()),
                weight: number(&row.weight, default_weight(), "weight", n)?,
                priority: number(&row.priority, 0, "tier", n)?,
            });
        }
        Ok(specs)
    }
}

#[derive(Deserialize)]
pub struct BindForm {
    csrf: String,
    #[serde(default)]
    provider: Vec<String>,
    #[serde(default)]
    upstream_model: Vec<String>,
    #[serde(default)]
    region: Vec<String>,
    #[serde(default)]
    weight: Vec<String>,
    #[serde(default)]
    priority: Vec<String>,
    #[serde(default)]
    max_attempts: String,
    #[serde(default)]
    timeout_ms: String,
    retry_rate_limit: Option<String>,
    retry_server_error: Option<String>,
    retry_timeout: Option<String>,
    retry_connect: Option<String>,
    fallback: Option<String>,
}

impl BindForm {
    fn columns(&self) -> Columns<'_> {
        Columns {
            provider: &self.provider,
            upstream_model: &self.upstream_model,
            region: &self.region,
            weight: &self.weight,
            priority: &self.priority,
        }
    }

    fn retry(&self) -> Result<RetrySpec, PortalError> {
        let max_attempts = self.max_attempts.trim().parse::<u32>().map_err(|_| {
            PortalError::invalid(
                "max_attempts",
                "Enter the attempts as a number from 1 to 10.",
            )
        })?;
        let timeout_ms = match self.timeout_ms.trim() {
            "" => None,
            ms => Some(ms.parse::<u64>().map_err(|_| {
                PortalError::invalid(
                    "timeout_ms",
                    "Enter the deadline in milliseconds (1 to 3600000), or leave it empty.",
                )
            })?),
        };
        Ok(RetrySpec {
            max_attempts,
            timeout_ms,
            retry_on: RetryOnSpec {
                rate_limit: self.retry_rate_limit.is_some(),
                server_error: self.retry_server_error.is_some(),
                timeout: self.retry_timeout.is_some(),
                connect: self.retry_connect.is_some(),
            },
            fallback: self.fallback.is_some(),
        })
    }

    fn binding(&self) -> Result<Binding, PortalError> {
        Ok(Binding {
            deployments: self.columns().specs("deployments")?,
            retry: Some(self.retry()?),
        })
    }
}

#[derive(Deserialize)]
pub struct RolloutForm {
    csrf: String,
    #[serde(default)]
    provider: Vec<String>,
    #[serde(default)]
    upstream_model: Vec<String>,
    #[serde(default)]
    region: Vec<String>,
    #[serde(default)]
    weight: Vec<String>,
    #[serde(default)]
    priority: Vec<String>,
    #[serde(default)]
    percent: String,
}

impl RolloutForm {
    fn columns(&self) -> Columns<'_> {
        Columns {
            provider: &self.provider,
            upstream_model: &self.upstream_model,
            region: &self.region,
            weight: &self.weight,
            priority: &self.priority,
        }
    }
}

#[derive(Deserialize)]
pub struct PercentForm {
    csrf: String,
    #[serde(default)]
    percent: String,
}

fn parse_percent(text: &str) -> Result<u32, PortalError> {
    text.trim()
        .trim_end_matches('%')
        .trim()
        .parse::<u32>()
        .map_err(|_| PortalError::invalid("percent", "Enter a share of 1 to 100 percent."))
}

/// A provider the row selects offer.
struct ProviderChoice {
    id: String,
    label: String,
}

/// The retry settings as the form shows them.
struct RetryDraft {
    max_attempts: String,
    timeout_ms: String,
    rate_limit: bool,
    server_error: bool,
    timeout: bool,
    connect: bool,
    fallback: bool,
}

impl From<RetrySpec> for RetryDraft {
    fn from(r: RetrySpec) -> RetryDraft {
        RetryDraft {
            max_attempts: r.max_attempts.to_string(),
            timeout_ms: r.timeout_ms.map(|ms| ms.to_string()).unwrap_or_default(),
            rate_limit: r.retry_on.rate_limit,
            server_error: r.retry_on.server_error,
            timeout: r.retry_on.timeout,
            connect: r.retry_on.connect,
            fallback: r.fallback,
        }
    }
}

struct RolloutInfo {
    percent: u8,
    candidate: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin/route.html")]
struct RoutePage {
    chrome: Chrome,
    model: String,
    display_name: String,
    bound: bool,
    current: Vec<String>,
    retry_text: String,
    providers: Vec<ProviderChoice>,
    binding_rows: Vec<Row>,
    retry: RetryDraft,
    rollout: Option<RolloutInfo>,
    candidate_rows: Vec<Row>,
    percent: String,
    binding_error: Option<String>,
    rollout_error: Option<String>,
    notice: Option<&'static str>,
}

/// What the forms held when one of them was refused.
#[derive(Default)]
struct Drafts {
    binding: Option<(Vec<Row>, RetryDraft)>,
    candidate: Option<(Vec<Row>, String)>,
    binding_error: Option<String>,
    rollout_error: Option<String>,
}

fn route_page(
    state: &AppState,
    operator: &SignedInOperator,
    model: &str,
    drafts: Drafts,
    notice: Option<&'static str>,
) -> Result<RoutePage, PortalError> {
    let view = state.live.view();
    let route = route_view(&view, model)?;
    let stored = view.routes.get(model);
    let deployments = stored.map(|r| r.deployments.as_slice()).unwrap_or_default();
    let mut providers: Vec<ProviderChoice> = view
        .providers
        .iter()
        .map(|(id, p)| ProviderChoice {
            id: id.clone(),
            label: format!(
                "{id} ({}, {}){}",
                p.config.protocol.as_str(),
                p.config.region,
                if p.enabled { "" } else { " — disabled" }
            ),
        })
        .collect();
    providers.sort_by(|a, b| a.id.cmp(&b.id));
    let (binding_rows, retry) = drafts
        .binding
        .unwrap_or_else(|| (rows_of(deployments), route.retry.into()));
    let (candidate_rows, percent) = drafts
        .candidate
        .unwrap_or_else(|| (rows_of(deployments), "10".into()));
    Ok(RoutePage {
        chrome: chrome(operator),
        model: route.model,
        display_name: route.display_name,
        bound: route.bound,
        current: route.deployments.iter().map(describe).collect(),
        retry_text: describe_retry(&route.retry),
        providers,
        binding_rows,
        retry,
        rollout: route.rollout.map(|r| RolloutInfo {
            percent: r.percent,
            candidate: r.candidate.iter().map(describe).collect(),
        }),
        candidate_rows,
        percent,
        binding_error: drafts.binding_error,
        rollout_error: drafts.rollout_error,
        notice,
    })
}

pub async fn detail(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Path(model): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let notice = match query.notice.as_deref() {
        Some("bound") => Some("The binding is saved; every server uses it within a second."),
        Some("rollout") => {
            Some("The rollout started: the chosen share of keys now uses the candidate.")
        }
        Some("percent") => Some("The rollout's share is changed."),
        Some("promoted") => Some("The candidate is now the binding for every key."),
        Some("rolled_back") => Some("Rolled back: every key uses the binding again."),
        _ => None,
    };
    let page = route_page(&state, &operator, &model, Drafts::default(), notice)?;
    rendered(StatusCode::OK, &page)
}

fn refused(
    state: &AppState,
    operator: &SignedInOperator,
    model: &str,
    drafts: Drafts,
    status: StatusCode,
) -> Result<Response, PortalError> {
    let page = route_page(state, operator, model, drafts, None)?;
    rendered(status, &page)
}

pub async fn bind_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(model): Path<String>,
    Form(form): Form<BindForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let attempt = async {
        let binding = form.binding()?;
        bind(&state, &operator, &request, &model, binding).await
    };
    match attempt.await {
        Ok(()) => Ok(redirect_to(&model, "bound")),
        Err(error @ PortalError::Invalid { .. }) => {
            let mut rows = form.columns().rows();
            rows.extend(std::iter::repeat_n(Row::default(), 1));
            let retry = RetryDraft {
                max_attempts: form.max_attempts.clone(),
                timeout_ms: form.timeout_ms.clone(),
                rate_limit: form.retry_rate_limit.is_some(),
                server_error: form.retry_server_error.is_some(),
                timeout: form.retry_timeout.is_some(),
                connect: form.retry_connect.is_some(),
                fallback: form.fallback.is_some(),
            };
            let drafts = Drafts {
                binding: Some((rows, retry)),
                binding_error: Some(error.to_string()),
                ..Drafts::default()
            };
            refused(&state, &operator, &model, drafts, error.status())
        }
        Err(other) => Err(other),
    }
}

pub async fn rollout_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(model): Path<String>,
    Form(form): Form<RolloutForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let attempt = async {
        let rollout = NewRollout {
            candidate: form.columns().specs("candidate")?,
            percent: parse_percent(&form.percent)?,
        };
        start_rollout(&state, &operator, &request, &model, rollout).await
    };
    match attempt.await {
        Ok(()) => Ok(redirect_to(&model, "rollout")),
        Err(error @ PortalError::Invalid { .. }) => {
            let drafts = Drafts {
                candidate: Some((form.columns().rows(), form.percent.clone())),
                rollout_error: Some(error.to_string()),
                ..Drafts::default()
            };
            refused(&state, &operator, &model, drafts, error.status())
        }
        Err(other) => Err(other),
    }
}

pub async fn percent_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(model): Path<String>,
    Form(form): Form<PercentForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let attempt = async {
        let percent = parse_percent(&form.percent)?;
        change_percent(&state, &operator, &request, &model, percent).await
    };
    match attempt.await {
        Ok(()) => Ok(redirect_to(&model, "percent")),
        Err(error @ PortalError::Invalid { .. }) => {
            let drafts = Drafts {
                rollout_error: Some(error.to_string()),
                ..Drafts::default()
            };
            refused(&state, &operator, &model, drafts, error.status())
        }
        Err(other) => Err(other),
    }
}

async fn finish_rollout(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    model: &str,
    command: RouteCommand,
    notice: &str,
) -> Result<Response, PortalError> {
    match execute(state, operator, request, model, command).await {
        Ok(()) => Ok(redirect_to(model, notice)),
        Err(error @ PortalError::Invalid { .. }) => {
            let drafts = Drafts {
                rollout_error: Some(error.to_string()),
                ..Drafts::default()
            };
            refused(state, operator, model, drafts, error.status())
        }
        Err(other) => Err(other),
    }
}

pub async fn promote_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(model): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PortalError> {
    check_csrf(&operator, &form)?;
    let command = RouteCommand::PromoteRollout;
    finish_rollout(&state, &operator, &request, &model, command, "promoted").await
}

pub async fn rollback_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(model): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PortalError> {
    check_csrf(&operator, &form)?;
    let command = RouteCommand::RollBack;
    finish_rollout(&state, &operator, &request, &model, command, "rolled_back").await
}
