//! What operators and finance do from the command line, on every configured store: confirm a
//! bank transfer (refused and flagged on another amount), issue prepaid codes, adjust a balance
//! — each with the operator as the events' actor.
#![allow(clippy::unwrap_used)]

mod common;

use common::visitor::Visitor;
use common::*;
use modelrouter_domain::metadata::{Actor, Metadata};
use serde_json::{json, Value};

/// Runs an operator command on a test's store: the binary on PostgreSQL, as an operator would;
/// on SQLite the same library calls in this process. (A second process writing the SQLite file
/// of a serving replica has, rarely, waited past the busy timeout — see docs/configuration.md;
/// the browser journey still runs the binary beside a SQLite replica.)
async fn operate(store: &Store, args: &[&str]) -> (bool, String, String) {
    if store.url.is_some() {
        return cli(store, args);
    }
    use modelrouter::billing::operator;
    use modelrouter_domain::Money;
    let core = store.core().await;
    let arg = |name: &str| {
        args.iter()
            .position(|a| *a == name)
            .map(|i| args[i + 1].to_string())
            .unwrap_or_default()
    };
    let result: anyhow::Result<String> = async {
        match (args[0], args[1]) {
            ("admin", "create") => {
                let email = arg("--email");
                let id = uuid::Uuid::new_v4().to_string();
                let login = modelrouter::store::LoginKind::Operator;
                anyhow::ensure!(
                    modelrouter::store::reserve_email(&core.db, &email, login, &id).await?
                );
                let register = modelrouter_domain::operator::OperatorCommand::Register {
                    email,
                    password_hash: modelrouter::crypto::hash_password("operator-password-1")?,
                    role: modelrouter_domain::operator::OperatorRole::Admin,
                    // As `admin create` gives it: one-time.
                    temporary: true,
                    expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(72)),
                };
                core.commands
                    .operators
                    .execute(&id, register, &Metadata::new(&Actor::Cli))
                    .await?;
                Ok(String::new())
            }
            ("orders", "confirm") => {
                let amount = Money(arg("--amount").parse()?);
                let reference = arg("--reference");
                let outcome = operator::confirm_transfer(
                    &core,
                    args[2],
                    amount,
                    &reference,
                    &arg("--operator"),
                )
                .await?;
                anyhow::ensure!(
                    outcome == modelrouter::billing::orders::Confirmed::Paid,
                    "does not match the order; refused and flagged"
                );
                Ok(String::new())
            }
            ("vouchers", "issue") => {
                let codes = operator::issue_codes(
                    &core,
                    Money(arg("--amount").parse()?),
                    "USD",
                    arg("--count").parse()?,
                    None,
                    &arg("--note"),
                    &arg("--operator"),
                )
                .await?;
                Ok(format!("{} code(s)\n{}", codes.len(), codes.join("\n")))
            }
            ("ledger", "adjust") => {
                let tenant = operator::tenant(&core, &arg("--tenant")).await?;
                operator::adjust(
                    &core,
                    &tenant,
                    Money(arg("--amount").parse()?),
                    &arg("--reason"),
                    &arg("--operator"),
                )
                .await?;
                Ok(String::new())
            }
            ("ledger", "replay") => {
                let tenant = operator::tenant(&core, &arg("--tenant")).await?;
                let check = modelrouter::ledger::check(&core.db, &tenant).await?;
                Ok(json!({"statement": check.statement}).to_string())
            }
            other => anyhow::bail!("not an operator command of this test: {other:?}"),
        }
    }
    .await;
    match result {
        Ok(out) => (true, out, String::new()),
        Err(error) => (false, String::new(), error.to_string()),
    }
}

/// Runs the binary on a test's store, as an operator would.
fn cli(store: &Store, args: &[&str]) -> (bool, String, String) {
    let settings = store.settings();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_modelrouter"));
    command
        .arg("--data-dir")
        .arg(store.dir.path())
        .args(args)
        .env("MODELROUTER_MASTER_KEY", settings.master_key.unwrap())
        .env_remove("MODELROUTER_DATABASE_URL");
    if let Some(url) = &store.url {
        command.env("MODELROUTER_DATABASE_URL", url);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn operators_confirm_transfers_issue_codes_and_adjust_balances_as_themselves() {
    for store in stores().await {
        let env = env_with(store, 0, |settings| {
            settings.payments.manual_instructions = Some("IBAN XX00 0000 0000".into());
        })
        .await;
        let alice = Visitor::sign_up(&env.url(""), "alice@example.com").await;
        let (ok, _, err) = operate(
            &env.store,
            &["admin", "create", "--email", "ops@example.com"],
        )
        .await;
        assert!(ok, "{err}");

        let order = |amount: i64| {
            let alice = &alice;
            async move {
                let (status, placed) = alice
                    .write(
                        "POST",
                        "/api/portal/recharge/orders",
                        json!({"amount": amount, "method": "manual"}),
                    )
                    .await;
                assert_eq!(status, 201, "{placed}");
                assert!(placed["pay_url"].is_null());
                placed["order_id"].as_str().unwrap().to_string()
            }
        };
        // The transfer arrived in full: paid and credited, by the operator.
        let paid = order(40_000_000).await;
        let (ok, out, err) = operate(
            &env.store,
            &[
                "orders",
                "confirm",
                &paid,
                "--amount",
                "40000000",
                "--reference",
                "BANK-123",
                "--operator",
                "ops@example.com",
            ],
        )
        .await;
        assert!(ok, "{out}{err}");
        assert!(alice.balance_becomes(40_000_000).await);
        // Less arrived than ordered: refused, flagged, nothing credited.
        let short = order(10_000_000).await;
        let (ok, _, err) = operate(
            &env.store,
            &[
                "orders",
                "confirm",
                &short,
                "--amount",
                "9000000",
                "--operator",
                "ops@example.com",
            ],
        )
        .await;
        assert!(!ok && err.contains("refused and flagged"), "{err}");
        let (_, view) = alice
            .json(&format!("/api/portal/recharge/orders/{short}"))
            .await;
        assert_eq!(view["order"]["state"], "pending");
        assert_eq!(view["order"]["mismatches"], 1);
        // Only operators may confirm.
        let (ok, _, err) = operate(
            &env.store,
            &[
                "orders",
                "confirm",
                &short,
                "--amount",
                "10000000",
                "--operator",
                "alice@example.com",
            ],
        )
        .await;
        assert!(!ok && err.contains("is not an operator"), "{err}");

        // Codes are printed once and redeem once.
        let (ok, out, err) = operate(
            &env.store,
            &[
                "vouchers",
                "issue",
                "--amount",
                "2000000",
                "--count",
                "2",
                "--note",
                "partner",
                "--operator",
                "ops@example.com",
            ],
        )
        .await;
        assert!(ok, "{err}");
        let codes: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(codes.len(), 2, "{out}");
        let (status, body) = alice
            .write(
                "POST",
                "/api/portal/recharge/redeem",
                json!({"code": codes[0]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(alice.balance_becomes(42_000_000).await);

        // An adjustment carries its reason and the operator as the actor.
        let (ok, _, err) = operate(
            &env.store,
            &[
                "ledger",
                "adjust",
                "--tenant",
                "alice@example.com",
                "--amount",
                "-500000",
                "--reason",
                "duplicate transfer fee",
                "--operator",
                "ops@example.com",
            ],
        )
        .await;
        assert!(ok, "{err}");
        assert!(alice.balance_becomes(41_500_000).await);
        let (ok, out, err) = operate(
            &env.store,
            &[
                "ledger",
                "replay",
                "--tenant",
                "alice@example.com",
                "--json",
            ],
        )
        .await;
        assert!(ok, "{err}");
        let statement: Value = serde_json::from_str(&out).unwrap();
        let adjustment = statement["statement"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["kind"]["type"] == "adjustment")
            .unwrap()
            .clone();
        assert!(
            adjustment["actor"]
                .as_str()
                .unwrap()
                .starts_with("operator:"),
            "{adjustment}"
        );
        assert_eq!(adjustment["amount"], -500_000);
        let _store = env.finish().await;
    }
}
