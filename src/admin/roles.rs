//! Which console changes each operator role may make. Every operator may read every console
//! page; a change (any method but GET and HEAD) is checked here, by its path, before its
//! handler runs — in the [`super::SignedInOperator`] extractor, so no handler can forget it.

use axum::http::Method;
use modelrouter_domain::operator::{Duty, OperatorRole};

use crate::portal::PortalError;

/// The kind of change a console path makes, or `None` for what every operator may do (signing
/// out). Pages and their JSON API alike.
pub fn duty_of(path: &str) -> Option<Duty> {
    let path = path
        .strip_prefix("/api/admin")
        .or_else(|| path.strip_prefix("/admin"))?;
    let mut parts = path.trim_start_matches('/').split('/');
    let area = parts.next().unwrap_or_default();
    let action = parts.nth(1).unwrap_or_default();
    match (area, action) {
        ("agents", "payouts") | ("tenants", "adjust") | ("orders" | "vouchers", _) => {
            Some(Duty::Money)
        }
        ("tenants", _) => Some(Duty::Accounts),
        ("providers" | "models" | "routes" | "agents", _) => Some(Duty::Platform),
        // Every operator signs out and changes their own password.
        ("logout" | "login" | "password", _) | ("account", "") => None,
        // Anything new is the admins' until it is given to a role here.
        _ => Some(Duty::Platform),
    }
}

/// Refuses a change the operator's role may not make.
pub fn check(role: OperatorRole, method: &Method, path: &str) -> Result<(), PortalError> {
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    match duty_of(path) {
        Some(duty) if !role.may(duty) => Err(PortalError::NotPermitted(refusal(role, duty))),
        _ => Ok(()),
    }
}

fn refusal(role: OperatorRole, duty: Duty) -> String {
    let what = match duty {
        Duty::Platform => "providers, models, routes or agents",
        Duty::Money => "orders, refunds, vouchers, balances or payouts",
        Duty::Accounts => "tenants' accounts",
    };
    format!(
        "Operators with the {} role cannot change {what}. Ask an admin.",
        super::account::role_name(role)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_console_change_has_its_duty() {
        for (path, duty) in [
            ("/admin/providers", Some(Duty::Platform)),
            ("/api/admin/providers/p1/credential", Some(Duty::Platform)),
            ("/admin/models/chat/prices", Some(Duty::Platform)),
            ("/api/admin/routes/chat", Some(Duty::Platform)),
            ("/admin/agents", Some(Duty::Platform)),
            ("/admin/agents/a1/commission", Some(Duty::Platform)),
            ("/api/admin/agents/a1/payouts", Some(Duty::Money)),
            ("/admin/orders/R-1/refund", Some(Duty::Money)),
            ("/admin/vouchers/batch.csv", Some(Duty::Money)),
            ("/api/admin/tenants/t1/adjust", Some(Duty::Money)),
            ("/admin/tenants/t1/suspend", Some(Duty::Accounts)),
            ("/api/admin/tenants/t1/password", Some(Duty::Accounts)),
            ("/admin/logout", None),
            ("/api/admin/logout", None),
            ("/admin/account/password", None),
            ("/api/admin/password", None),
            ("/admin/something-new", Some(Duty::Platform)),
        ] {
            assert_eq!(duty_of(path), duty, "{path}");
        }
    }

    #[test]
    fn reading_is_open_to_every_role() {
        for path in ["/admin/providers", "/api/admin/orders", "/admin/audit"] {
            assert!(check(OperatorRole::Support, &Method::GET, path).is_ok());
        }
        assert!(check(
            OperatorRole::Support,
            &Method::POST,
            "/admin/orders/R-1/refund"
        )
        .is_err());
        assert!(check(
            OperatorRole::Finance,
            &Method::POST,
            "/admin/orders/R-1/refund"
        )
        .is_ok());
    }
}
