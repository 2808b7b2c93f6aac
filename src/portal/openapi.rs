//! The OpenAPI document of the portal's JSON API, served at `/api/openapi.json`. It is derived
//! from the handlers' own annotations, so it cannot drift from what the routes accept.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    account, dashboard, keys, models, receipts, recharge, statements, usage, verification,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Model Router tenant portal API",
        description = "Every action of the tenant portal as JSON. Sign in with `POST /api/portal/login` \
(email and password; API keys never sign in): the response sets the `mr_session` cookie and returns \
`csrf_token`, which every write must send back as the `X-CSRF-Token` header. Money is integer \
micro-units of the platform currency. Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    paths(
        account::api_signup,
        account::api_login,
        account::api_logout,
        account::api_session,
        account::api_password,
        verification::api_verify,
        verification::api_resend,
        verification::api_mail,
        dashboard::api,
        keys::api_list,
        keys::api_create,
        keys::api_get,
        keys::api_update,
        keys::api_revoke,
        models::api,
        usage::api,
        statements::api,
        recharge::api_orders,
        recharge::api_order,
        recharge::api_place,
        recharge::api_redeem,
        receipts::api_verify,
    ),
    components(schemas(keys::ScopeSpec)),
    modifiers(&SessionCookie),
    security(("session" = [])),
    tags(
        (name = "account", description = "Sign-up, email verification, sign-in, sign-out, password"),
        (name = "dashboard", description = "Balance and spend at a glance"),
        (name = "keys", description = "Platform API keys and their model scope"),
        (name = "models", description = "Models the tenant can call"),
        (name = "usage", description = "Calls, totals by model; CSV at /portal/usage/export.csv"),
        (name = "recharge", description = "Top-up orders, their state and history; prepaid codes"),
    )
)]
pub struct PortalApi;

/// Declares the session cookie as the API's authentication.
struct SessionCookie;

impl Modify for SessionCookie {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                super::session::SESSION_COOKIE,
            ))),
        );
    }
}

/// The whole document: the tenant portal's API, the console's (`/api/admin`) and the agent
/// portal's (`/api/agent`), each secured by its own session cookie.
pub fn full_document() -> utoipa::openapi::OpenApi {
    let mut document = PortalApi::openapi();
    document.info.title =
        "Model Router people API: tenant portal, operations console, agents".into();
    document.merge(secured_by(
        crate::admin::openapi(),
        "admin_session",
        crate::portal::session::cookie_name(crate::store::sessions::Realm::Operator),
    ));
    document.merge(secured_by(
        crate::agent::openapi(),
        "agent_session",
        crate::portal::session::cookie_name(crate::store::sessions::Realm::Agent),
    ));
    document
}

/// Declares `cookie` as scheme `scheme` and requires it on every operation of `part` that says
/// nothing else (sign-in says `security(())`).
pub fn secured_by(
    mut part: utoipa::openapi::OpenApi,
    scheme: &str,
    cookie: &str,
) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::SecurityRequirement;
    let components = part.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        scheme,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(cookie))),
    );
    for item in part.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security.get_or_insert_with(|| {
                vec![SecurityRequirement::new(scheme, Vec::<String>::new())]
            });
        }
    }
    part
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(full_document())
}
