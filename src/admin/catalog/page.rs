//! The catalog's pages: the list with the publish form, and one model's page with its forms.
//! Forms post, then redirect with a notice; an invalid form is shown again with the operator's
//! values and the message (422).

use super::*;

/// A model row of the list.
struct ModelRow {
    name: String,
    display_name: String,
    context_window: String,
    price: String,
    next_price: String,
    visibility: String,
    state: &'static str,
}

/// What the publish form held.
#[derive(Default, Deserialize)]
pub struct PublishForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    context_window: String,
    #[serde(default)]
    max_output_tokens: String,
    #[serde(default)]
    input: String,
    #[serde(default)]
    output: String,
    #[serde(default)]
    cached_input: String,
    #[serde(default)]
    cache_write: String,
}

impl PublishForm {
    fn prices(&self) -> Result<Prices, PortalError> {
        prices_of(
            &self.input,
            &self.output,
            &self.cached_input,
            &self.cache_write,
        )
    }

    fn new_model(&self) -> Result<NewModel, PortalError> {
        Ok(NewModel {
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            context_window: parse_count("context_window", "context window", &self.context_window)?,
            max_output_tokens: parse_count(
                "max_output_tokens",
                "default output limit",
                &self.max_output_tokens,
            )?,
            prices: self.prices()?,
            visibility: None,
        })
    }
}

fn prices_of(
    input: &str,
    output: &str,
    cached_input: &str,
    cache_write: &str,
) -> Result<Prices, PortalError> {
    let input = parse_price("input_price", "input", input)?;
    // An empty cached-input price means "the input price": no discount for cache hits.
    let cached_input = if cached_input.trim().is_empty() {
        input
    } else {
        parse_price("cached_input_price", "cached input", cached_input)?
    };
    Ok(Prices {
        input,
        output: parse_price("output_price", "output", output)?,
        cached_input,
        cache_write: if cache_write.trim().is_empty() {
            None
        } else {
            Some(parse_price(
                "cache_write_price",
                "cache write",
                cache_write,
            )?)
        },
    })
}

#[derive(Template)]
#[template(path = "admin/models.html")]
struct ModelsPage {
    chrome: Chrome,
    models: Vec<ModelRow>,
    draft: PublishForm,
    error: Option<String>,
    notice: Option<String>,
    currency: String,
}

fn models_page(
    state: &AppState,
    operator: &SignedInOperator,
    draft: PublishForm,
    error: Option<String>,
    notice: Option<String>,
) -> ModelsPage {
    let view = state.live.view();
    let now = Utc::now();
    let models = view
        .models
        .iter()
        .map(|(name, model)| ModelRow {
            name: name.clone(),
            display_name: model.details.display_name.clone(),
            context_window: model
                .details
                .context_window
                .map_or_else(|| "—".into(), |w| format::count(i64::from(w))),
            price: describe_prices(&model.price_at(now).pricing),
            next_price: model.next_price_after(now).map_or_else(String::new, |p| {
                format!(
                    "From {}: {}",
                    p.effective_at.format("%Y-%m-%d %H:%M UTC"),
                    describe_prices(&p.pricing)
                )
            }),
            visibility: describe_visibility(&view, &model.visibility),
            state: state_of(&view, name, model),
        })
        .collect();
    ModelsPage {
        chrome: chrome(operator),
        models,
        draft,
        error,
        notice,
        currency: state.settings.currency.clone(),
    }
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let notice = match query.notice.as_deref() {
        Some("retired") => {
            Some("The model is retired: no tenant sees or calls it any more.".into())
        }
        _ => None,
    };
    let page = models_page(&state, &operator, PublishForm::default(), None, notice);
    rendered(StatusCode::OK, &page)
}

pub async fn publish_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Form(form): Form<PublishForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let attempt = async {
        let new = form.new_model()?;
        publish(&state, &operator, &request, new).await
    };
    match attempt.await {
        Ok(name) => Ok(redirect(format!(
            "/admin/models/{}?notice=published",
            path_segment(&name)
        ))),
        Err(error @ PortalError::Invalid { .. }) => {
            let page = models_page(&state, &operator, form, Some(error.to_string()), None);
            rendered(error.status(), &page)
        }
        Err(other) => Err(other),
    }
}

/// One price version as the history table shows it.
struct PriceRow {
    version: u32,
    prices: String,
    from: String,
    status: &'static str,
}

#[derive(Default, Deserialize)]
pub struct DetailsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    context_window: String,
    #[serde(default)]
    max_output_tokens: String,
}

#[derive(Default, Deserialize)]
pub struct PricesForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    input: String,
    #[serde(default)]
    output: String,
    #[serde(default)]
    cached_input: String,
    #[serde(default)]
    cache_write: String,
    #[serde(default)]
    effective_at: String,
}

#[derive(Default, Deserialize)]
pub struct VisibilityForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    visibility: String,
    /// Tenant emails or ids, one per line or separated by commas.
    #[serde(default)]
    tenants: String,
    /// Plan names, separated by commas.
    #[serde(default)]
    plans: String,
}

fn list_of(text: &str) -> Vec<String> {
    text.split([',', '\n', '\r', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl VisibilityForm {
    fn spec(&self) -> VisibilitySpec {
        if self.visibility == "restricted" {
            VisibilitySpec::Restricted {
                tenants: list_of(&self.tenants),
                plans: list_of(&self.plans),
            }
        } else {
            VisibilitySpec::Everyone
        }
    }
}

/// Which form of the model page an error belongs to.
#[derive(Default)]
struct FormErrors {
    details: Option<String>,
    prices: Option<String>,
    visibility: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/model.html")]
struct ModelPage {
    chrome: Chrome,
    name: String,
    display_name: String,
    state: &'static str,
    visibility_text: String,
    current_price: String,
    history: Vec<PriceRow>,
    details: DetailsForm,
    prices: PricesForm,
    visibility: VisibilityForm,
    errors: FormErrors,
    notice: Option<&'static str>,
    currency: String,
}

/// The forms as the model is now.
struct Drafts {
    details: Option<DetailsForm>,
    prices: Option<PricesForm>,
    visibility: Option<VisibilityForm>,
}

fn model_page(
    state: &AppState,
    operator: &SignedInOperator,
    name: &str,
    drafts: Drafts,
    errors: FormErrors,
    notice: Option<&'static str>,
) -> Result<ModelPage, PortalError> {
    let view = state.live.view();
    let model = view.models.get(name).ok_or(PortalError::NotFound)?;
    let now = Utc::now();
    let current = model.price_at(now);
    let history = model
        .prices
        .iter()
        .rev()
        .map(|p| PriceRow {
            version: p.version,
            prices: describe_prices(&p.pricing),
            from: p.effective_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            status: if p.version == current.version {
                "current"
            } else if p.effective_at > now {
                "scheduled"
            } else {
                "past"
            },
        })
        .collect();
    let details = drafts.details.unwrap_or_else(|| DetailsForm {
        display_name: model.details.display_name.clone(),
        description: model.details.description.clone(),
        context_window: model
            .details
            .context_window
            .map(|w| w.to_string())
            .unwrap_or_default(),
        max_output_tokens: model.details.max_output_tokens.to_string(),
        ..DetailsForm::default()
    });
    let newest = model.prices.last().copied().unwrap_or(current);
    let prices = drafts.prices.unwrap_or_else(|| PricesForm {
        input: price_input(newest.pricing.input),
        output: price_input(newest.pricing.output),
        cached_input: price_input(newest.pricing.cached_input),
        cache_write: newest
            .pricing
            .cache_write
            .map(price_input)
            .unwrap_or_default(),
        ..PricesForm::default()
    });
    let visibility = drafts
        .visibility
        .unwrap_or_else(|| match &model.visibility {
            Visibility::Everyone => VisibilityForm {
                visibility: "everyone".into(),
                ..VisibilityForm::default()
            },
            Visibility::Restricted { tenants, plans } => VisibilityForm {
                visibility: "restricted".into(),
                tenants: tenants
                    .iter()
                    .map(|t| tenant_label(&view, t))
                    .collect::<Vec<_>>()
                    .join("\n"),
                plans: plans.join(", "),
                ..VisibilityForm::default()
            },
        });
    Ok(ModelPage {
        chrome: chrome(operator),
        name: name.to_string(),
        display_name: model.details.display_name.clone(),
        state: state_of(&view, name, model),
        visibility_text: describe_visibility(&view, &model.visibility),
        current_price: describe_prices(&current.pricing),
        history,
        details,
        prices,
        visibility,
        errors,
        notice,
        currency: state.settings.currency.clone(),
    })
}

fn no_drafts() -> Drafts {
    Drafts {
        details: None,
        prices: None,
        visibility: None,
    }
}

pub async fn detail(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Path(name): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let notice = match query.notice.as_deref() {
        Some("published") => {
            Some("The model is published. Bind it to a route so tenants can call it.")
        }
        Some("details") => Some("The details were saved."),
        Some("prices") => Some("The new prices are recorded as a new price version."),
        Some("visibility") => Some("Visibility saved: it applies to listings and calls at once."),
        Some("restored") => Some("The model is offered again."),
        _ => None,
    };
    let page = model_page(
        &state,
        &operator,
        &name,
        no_drafts(),
        FormErrors::default(),
        notice,
    )?;
    rendered(StatusCode::OK, &page)
}

fn back(name: &str, notice: &str) -> Response {
    redirect(format!(
        "/admin/models/{}?notice={notice}",
        path_segment(name)
    ))
}

/// Shows the model page again with the error next to the form it belongs to.
fn invalid(
    state: &AppState,
    operator: &SignedInOperator,
    name: &str,
    drafts: Drafts,
    error: PortalError,
    place: fn(&mut FormErrors, String),
) -> Result<Response, PortalError> {
    let mut errors = FormErrors::default();
    place(&mut errors, error.to_string());
    let page = model_page(state, operator, name, drafts, errors, None)?;
    rendered(error.status(), &page)
}

pub async fn details_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(name): Path<String>,
    Form(form): Form<DetailsForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let attempt = async {
        let change = ModelChange {
            display_name: Some(form.display_name.clone()),
            description: Some(form.description.clone()),
            context_window: Some(parse_count(
                "context_window",
                "context window",
                &form.context_window,
            )?),
            max_output_tokens: Some(
                parse_count(
                    "max_output_tokens",
                    "default output limit",
                    &form.max_output_tokens,
                )?
                .unwrap_or_else(default_max_output_tokens),
            ),
        };
        change_details(&state, &operator, &request, &name, change).await
    };
    match attempt.await {
        Ok(()) => Ok(back(&name, "details")),
        Err(error @ PortalError::Invalid { .. }) => {
            let drafts = Drafts {
                details: Some(form),
                ..no_drafts()
            };
            invalid(&state, &operator, &name, drafts, error, |e, m| {
                e.details = Some(m)
            })
        }
        Err(other) => Err(other),
    }
}

pub async fn prices_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(name): Path<String>,
    Form(form): Form<PricesForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let attempt = async {
        let new = NewPrices {
            prices: prices_of(
                &form.input,
                &form.output,
                &form.cached_input,
                &form.cache_write,
            )?,
            effective_at: parse_time(&form.effective_at)?,
        };
        change_prices(&state, &operator, &request, &name, new).await
    };
    match attempt.await {
        Ok(()) => Ok(back(&name, "prices")),
        Err(error @ PortalError::Invalid { .. }) => {
            let drafts = Drafts {
                prices: Some(form),
                ..no_drafts()
            };
            invalid(&state, &operator, &name, drafts, error, |e, m| {
                e.prices = Some(m)
            })
        }
        Err(other) => Err(other),
    }
}

pub async fn visibility_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(name): Path<String>,
    Form(form): Form<VisibilityForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    match set_visibility(&state, &operator, &request, &name, form.spec()).await {
        Ok(()) => Ok(back(&name, "visibility")),
        Err(error @ PortalError::Invalid { .. }) => {
            let drafts = Drafts {
                visibility: Some(form),
                ..no_drafts()
            };
            invalid(&state, &operator, &name, drafts, error, |e, m| {
                e.visibility = Some(m)
            })
        }
        Err(other) => Err(other),
    }
}

pub async fn retire_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PortalError> {
    check_csrf(&operator, &form)?;
    retire_or_restore(&state, &operator, &request, &name, true).await?;
    Ok(redirect("/admin/models?notice=retired".into()))
}

pub async fn restore_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PortalError> {
    check_csrf(&operator, &form)?;
    retire_or_restore(&state, &operator, &request, &name, false).await?;
    Ok(back(&name, "restored"))
}
