//! The `modelrouter` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use modelrouter::config::Settings;
use modelrouter::ledger;
use modelrouter::portal::one_time_expiry_after;
use modelrouter::server::Core;
use modelrouter_domain::metadata::Actor;
use modelrouter_domain::operator::OperatorRole;
use modelrouter_domain::Money;
use modelrouter_projections::sql::{self, Projection};

#[derive(Parser)]
#[command(
    name = "modelrouter",
    version,
    about = "Multi-tenant, multi-protocol AI model gateway"
)]
struct Cli {
    /// Where the embedded store, master key and demo key live.
    #[arg(
        long,
        global = true,
        env = "MODELROUTER_DATA_DIR",
        default_value = "./data"
    )]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://…); without it the embedded SQLite store is used.
    #[arg(long, global = true, env = "MODELROUTER_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, env = "MODELROUTER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Start the built-in mock upstream and seed a demo tenant with balance and a key.
        #[arg(long)]
        demo: bool,
        /// The address customers reach this gateway at, shown in the portal's snippets
        /// (default: taken from each request's Host header).
        #[arg(long, env = "MODELROUTER_PUBLIC_URL")]
        public_url: Option<String>,
        /// Micro-units credited once to each tenant who signs up (default 0; 5 units with --demo).
        #[arg(long, env = "MODELROUTER_SIGNUP_CREDIT")]
        signup_credit: Option<i64>,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Manage platform operators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Apply an import file (providers, models, routes, tenants) as commands.
    Import { file: PathBuf },
    /// Manage SQL projections.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Finance's ledger: replay accounts from their events and check the read model.
    ///
    /// Exit codes: 0 the ledger checks out, 1 it does not, 2 it could not be checked.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Recharge orders: confirm a bank transfer with the amount received.
    Orders {
        #[command(subcommand)]
        command: OrdersCommand,
    },
    /// Prepaid voucher codes.
    Vouchers {
        #[command(subcommand)]
        command: VouchersCommand,
    },
    /// Run the mock upstream (OpenAI-compatible) on its own.
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:18091")]
        listen: SocketAddr,
        /// Require this Bearer key.
        #[arg(long)]
        api_key: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an operator and print a one-time password (changed at the first sign-in; it
    /// expires after MODELROUTER_ONE_TIME_PASSWORD_HOURS, default 72).
    Create {
        #[arg(long)]
        email: String,
        /// admin (every change), finance (orders, refunds, vouchers, balances, payouts) or
        /// support (tenants' accounts); every role may read every console page.
        #[arg(long, default_value = "admin", value_parser = ["admin", "finance", "support"])]
        role: String,
    },
    /// Give an operator a new one-time password (when theirs expired or was forgotten); their
    /// sessions end.
    ResetPassword {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Drop and replay one projection (balances, usage, recharges, commissions, …) or all.
    /// Events that cannot be applied are left out and listed; the exit code is then 1.
    Rebuild { name: Option<String> },
    /// List the events projections could not apply and left out.
    Failures,
    /// Acknowledge a left-out event, so `/health/ready` no longer reports it.
    Acknowledge {
        name: String,
        position: i64,
        /// The operator's sign-in email.
        #[arg(long)]
        operator: String,
    },
}

#[derive(Subcommand)]
enum OrdersCommand {
    /// Confirm a bank-transfer order with the amount that arrived; a different amount is refused
    /// and flagged on the order.
    Confirm {
        order: String,
        /// Micro-units received.
        #[arg(long)]
        amount: i64,
        /// The bank's reference of the transfer.
        #[arg(long, default_value = "manual")]
        reference: String,
        /// The operator's sign-in email.
        #[arg(long)]
        operator: String,
    },
}

#[derive(Subcommand)]
enum VouchersCommand {
    /// Issue prepaid codes; prints them once.
    Issue {
        /// Micro-units each code credits.
        #[arg(long)]
        amount: i64,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Days until the codes expire (default: never).
        #[arg(long)]
        expires_in_days: Option<i64>,
        #[arg(long, default_value = "")]
        note: String,
        /// The operator's sign-in email.
        #[arg(long)]
        operator: String,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Adjust a tenant's balance (negative lowers it), with a reason and the operator as actor.
    Adjust {
        /// The tenant's id or sign-in email.
        #[arg(long)]
        tenant: String,
        /// Micro-units, e.g. 5000000 for 5 units or -250000.
        #[arg(long, allow_hyphen_values = true)]
        amount: i64,
        #[arg(long)]
        reason: String,
        /// The operator's sign-in email.
        #[arg(long)]
        operator: String,
    },
    /// Print a tenant's statement, replayed from its Account events, and check it against the
    /// balances read model, the Account aggregate and the calls the log records.
    Replay {
        /// The tenant's id or sign-in email.
        #[arg(long)]
        tenant: String,
        /// Print the statement and the check as JSON (amounts in micro-units).
        #[arg(long)]
        json: bool,
    },
    /// Check tenants' ledgers as `replay` does, one line per tenant: every tenant (--all) or one
    /// (--tenant).
    #[command(group(clap::ArgGroup::new("tenants").required(true).args(["all", "tenant"])))]
    Verify {
        /// Every tenant with an Account stream, a balances row or recorded calls.
        #[arg(long)]
        all: bool,
        /// One tenant, by id or sign-in email.
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn settings(cli: &Cli, listen: SocketAddr) -> anyhow::Result<Settings> {
    let mut settings = Settings::local(listen, cli.data_dir.clone());
    settings.read_account_env()?;
    settings.read_metering_env()?;
    settings.database_url = cli.database_url.clone().filter(|u| !u.is_empty());
    settings.master_key = std::env::var("MODELROUTER_MASTER_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    if let Some(currency) = std::env::var("MODELROUTER_CURRENCY")
        .ok()
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        settings.currency = currency;
    }
    Ok(settings)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MODELROUTER_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let default_listen: SocketAddr = ([127, 0, 0, 1], 8080).into();
    match &cli.command {
        Command::Serve {
            listen,
            demo,
            public_url,
            signup_credit,
        } => {
            let mut settings = settings(&cli, *listen)?;
            settings.public_url = public_url
                .as_deref()
                .map(|url| url.trim_end_matches('/').to_string())
                .filter(|url| !url.is_empty());
            let default_credit = if *demo { 5 * Money::MICROS_PER_UNIT } else { 0 };
            let credit = signup_credit.unwrap_or(default_credit);
            anyhow::ensure!(
                (0..=Money::MAX_AMOUNT.0).contains(&credit),
                "--signup-credit must be from 0 to {} micro-units",
                Money::MAX_AMOUNT.0
            );
            settings.signup_credit = Money(credit);
            settings.payments = modelrouter::config::PaymentSettings::from_env()?;
            settings.edge = modelrouter::config::EdgeSettings::from_env()?;
            settings.code_guesses = modelrouter::config::CodeGuessLimits::from_env()?;
            // The demo shows top-ups end to end with the built-in sandbox payment page.
            settings.payments.sandbox |= *demo;
            // …and, without a mail server, the verification mail in the portal: one click.
            settings.mail.outbox_in_portal |= *demo && settings.mail.smtp.is_none();
            if settings.mail.smtp.is_none() {
                tracing::info!(
                    shown_in_portal = settings.mail.outbox_in_portal,
                    "no SMTP server configured (MODELROUTER_SMTP_HOST): mail is kept in the \
                     store's outbox"
                );
            }
            serve(settings, *demo).await
        }
        Command::Migrate => {
            let settings = settings(&cli, default_listen)?;
            Core::open(&settings).await?;
            println!(
                "migrations applied ({})",
                if settings.database_url.is_some() {
                    "postgres"
                } else {
                    "sqlite"
                }
            );
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Create { email, role },
        } => {
            let role: OperatorRole =
                serde_json::from_value(serde_json::Value::String(role.clone()))
                    .context("unknown role")?;
            let settings = settings(&cli, default_listen)?;
            let core = Core::open(&settings).await?;
            let email = modelrouter_domain::tenant::normalize_email(email)?;
            let expires_at = one_time_expiry_after(settings.one_time_password_ttl);
            let (_, password) = modelrouter::admin::create_operator_with_one_time_password(
                &core.commands,
                &email,
                role,
                expires_at,
                &Actor::Cli,
            )
            .await?;
            println!("operator {email} created; one-time password: {password}");
            println!("role: {}", modelrouter::admin::role_name(role));
            println!("it must be changed at the first sign-in and expires at {expires_at}");
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::ResetPassword { email },
        } => {
            let settings = settings(&cli, default_listen)?;
            let core = Core::open(&settings).await?;
            let expires_at = one_time_expiry_after(settings.one_time_password_ttl);
            let password = modelrouter::admin::reset_operator_password(
                &core.commands,
                email,
                expires_at,
                &Actor::Cli,
            )
            .await?;
            println!("new one-time password for {email}: {password}");
            println!("it must be changed at the first sign-in and expires at {expires_at}");
            Ok(())
        }
        Command::Import { file } => {
            let core = Core::open(&settings(&cli, default_listen)?).await?;
            let report = modelrouter::import::import_path(&core, file).await?;
            println!("imported {}: {} new events", file.display(), report.events);
            for (email, name, key) in report.generated_keys {
                println!("new key for {email} ({name}), shown once: {key}");
            }
            Ok(())
        }
        Command::Projections { command } => {
            let core = Core::open(&settings(&cli, default_listen)?).await?;
            let named = |name: &str| {
                Projection::from_name(name).with_context(|| {
                    let known: Vec<&str> = Projection::ALL.iter().map(|p| p.name()).collect();
                    format!("unknown projection {name:?}; known: {}", known.join(", "))
                })
            };
            match command {
                ProjectionsCommand::Rebuild { name } => {
                    let projections = match name {
                        None => Projection::ALL.to_vec(),
                        Some(name) => vec![named(name)?],
                    };
                    for projection in &projections {
                        let events = sql::rebuild(&core.db, *projection).await?;
                        println!("rebuilt {} from {events} events", projection.name());
                    }
                    let left_out: Vec<_> = sql::failures::unacknowledged(&core.db)
                        .await?
                        .into_iter()
                        .filter(|f| projections.iter().any(|p| p.name() == f.projection))
                        .collect();
                    for failure in &left_out {
                        eprintln!("left out: {}", failure.describe());
                    }
                    if !left_out.is_empty() {
                        eprintln!(
                            "{} event(s) could not be applied and were left out; everything else \
                             is rebuilt (acknowledge with `projections acknowledge`)",
                            left_out.len()
                        );
                        std::process::exit(1);
                    }
                    Ok(())
                }
                ProjectionsCommand::Failures => {
                    for failure in sql::failures::all(&core.db).await? {
                        let state = match &failure.acknowledged_by {
                            Some(by) => format!("acknowledged by {by}"),
                            None => "NOT ACKNOWLEDGED".into(),
                        };
                        println!("{}  [{state}]", failure.describe());
                    }
                    Ok(())
                }
                ProjectionsCommand::Acknowledge {
                    name,
                    position,
                    operator,
                } => {
                    let metadata =
                        modelrouter::billing::operator::operator(&core, operator).await?;
                    let by = metadata
                        .into_map()
                        .remove(modelrouter_domain::metadata::ACTOR)
                        .unwrap_or_default();
                    anyhow::ensure!(
                        sql::failures::acknowledge(&core.db, named(name)?, *position, &by).await?,
                        "{name} left out no event at position {position}"
                    );
                    println!("acknowledged {name} at position {position}");
                    Ok(())
                }
            }
        }
        Command::Ledger { command } => {
            let code = match ledger(&cli, command).await {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(error) => {
                    eprintln!("Error: {error:#}");
                    2
                }
            };
            std::io::Write::flush(&mut std::io::stdout())?;
            std::process::exit(code);
        }
        Command::Orders {
            command:
                OrdersCommand::Confirm {
                    order,
                    amount,
                    reference,
                    operator,
                },
        } => {
            let core = Core::open(&settings(&cli, default_listen)?).await?;
            let outcome = modelrouter::billing::operator::confirm_transfer(
                &core,
                order,
                Money(*amount),
                reference,
                operator,
            )
            .await?;
            match outcome {
                modelrouter::billing::orders::Confirmed::Paid => {
                    println!("order {order} is paid and credited");
                    Ok(())
                }
                modelrouter::billing::orders::Confirmed::Refused => anyhow::bail!(
                    "order {order}: {} received does not match the order; refused and flagged",
                    Money(*amount)
                ),
            }
        }
        Command::Vouchers {
            command:
                VouchersCommand::Issue {
                    amount,
                    count,
                    expires_in_days,
                    note,
                    operator,
                },
        } => {
            let settings = settings(&cli, default_listen)?;
            let core = Core::open(&settings).await?;
            let expires_at =
                expires_in_days.map(|days| chrono::Utc::now() + chrono::Duration::days(days));
            let codes = modelrouter::billing::operator::issue_codes(
                &core,
                Money(*amount),
                &settings.currency,
                *count,
                expires_at,
                note,
                operator,
            )
            .await?;
            println!(
                "{} code(s) of {} {}, shown once:",
                codes.len(),
                Money(*amount),
                settings.currency
            );
            for code in codes {
                println!("{code}");
            }
            Ok(())
        }
        Command::MockUpstream { listen, api_key } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!(
                "mock upstream listening on http://{}/v1",
                listener.local_addr()?
            );
            let config = modelrouter::mock::MockConfig {
                api_key: api_key.clone(),
            };
            modelrouter::mock::serve(listener, config, shutdown_signal()).await?;
            Ok(())
        }
    }
}

/// Runs a ledger command: Ok(true) when every account checked out, Ok(false) when one did not.
async fn ledger(cli: &Cli, command: &LedgerCommand) -> anyhow::Result<bool> {
    let settings = settings(cli, ([127, 0, 0, 1], 8080).into())?;
    // Replay and verify open only the store: they read the accounts and calls they check, never
    // the whole log.
    match command {
        LedgerCommand::Adjust {
            tenant,
            amount,
            reason,
            operator,
        } => {
            let core = Core::open(&settings).await?;
            let id = modelrouter::billing::operator::tenant(&core, tenant).await?;
            modelrouter::billing::operator::adjust(&core, &id, Money(*amount), reason, operator)
                .await?;
            let email = email_of(&core.db, &id).await?;
            println!(
                "adjusted {} by {} ({reason})",
                label(&id, email.as_deref()),
                Money(*amount)
            );
            Ok(true)
        }
        LedgerCommand::Replay { tenant, json } => {
            let db = modelrouter::server::open_store(&settings).await?;
            let id = modelrouter::billing::operator::tenant_in(&db, tenant).await?;
            let email = email_of(&db, &id).await?;
            let label = label(&id, email.as_deref());
            let check = match ledger::check(&db, &id).await {
                Ok(check) => check,
                Err(error) if error.is_finding() => {
                    eprintln!("the ledger of {label} cannot be replayed: {error}");
                    return Ok(false);
                }
                Err(error) => return Err(error.into()),
            };
            ensure_known(&id, email.as_deref(), &check)?;
            if *json {
                let document = serde_json::json!({
                    "tenant_id": id,
                    "email": email,
                    "statement": check.statement,
                    "check": {
                        "clean": check.is_clean(),
                        "differences": check.differences,
                        "pending": check.pending,
                        "recorded_calls": check.recorded_calls,
                        "read_model": check.read_model,
                        "aggregate": check.aggregate,
                    },
                });
                println!("{}", serde_json::to_string_pretty(&document)?);
            } else {
                println!("Ledger of tenant {label}\n");
                println!("{}", check.statement);
                if check.is_clean() {
                    println!(
                        "check: OK, the replay matches the balances read model, the Account \
                         aggregate and the {} call(s) the log records",
                        check.recorded_calls
                    );
                } else {
                    println!("check: {} difference(s)", check.differences.len());
                    for difference in &check.differences {
                        println!("  {difference}");
                    }
                }
                for pending in &check.pending {
                    println!("pending: {pending}");
                }
            }
            Ok(check.is_clean())
        }
        LedgerCommand::Verify { tenant, .. } => {
            let db = modelrouter::server::open_store(&settings).await?;
            let tenants = match tenant {
                Some(tenant) => vec![modelrouter::billing::operator::tenant_in(&db, tenant).await?],
                None => ledger::tenants(&db).await?,
            };
            let mut failing = 0;
            for id in &tenants {
                let email = email_of(&db, id).await?;
                let label = label(id, email.as_deref());
                let check = ledger::check(&db, id).await;
                if let (Some(_), Ok(check)) = (tenant, &check) {
                    ensure_known(id, email.as_deref(), check)?;
                }
                match check {
                    Ok(check) if check.is_clean() => {
                        let pending: u64 = check.pending.iter().map(|p| p.calls).sum();
                        let pending = match pending {
                            0 => String::new(),
                            calls => {
                                format!("  ({calls} call(s) pending settlement on open leases)")
                            }
                        };
                        println!(
                            "OK     {label}  balance {}{pending}",
                            check.statement.balance
                        );
                    }
                    Ok(check) => {
                        failing += 1;
                        let differences: Vec<String> =
                            check.differences.iter().map(ToString::to_string).collect();
                        println!("DIFF   {label}  {}", differences.join("; "));
                    }
                    Err(error) if error.is_finding() => {
                        failing += 1;
                        println!("ERROR  {label}  cannot be replayed: {error}");
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            println!(
                "{} tenant(s) checked: {} OK, {failing} with differences",
                tenants.len(),
                tenants.len() - failing
            );
            Ok(failing == 0)
        }
    }
}

/// Refuses a tenant id nothing knows: no tenant, no Account events, no balances row, no calls.
fn ensure_known(id: &str, email: Option<&str>, check: &ledger::Check) -> anyhow::Result<()> {
    let unknown = email.is_none()
        && check.statement.lines.is_empty()
        && check.read_model.is_none()
        && check.recorded_calls == 0;
    anyhow::ensure!(
        !unknown,
        "no tenant {id}: no such tenant, no Account events, no balances row and no calls"
    );
    Ok(())
}

/// A tenant's sign-in email, from its own events alone.
async fn email_of(db: &modelrouter::store::Db, tenant_id: &str) -> anyhow::Result<Option<String>> {
    let mut view = modelrouter_projections::LiveView::default();
    for event in db
        .events_of(modelrouter_domain::aggregate_types::TENANT, tenant_id)
        .await?
    {
        view.apply(&event);
    }
    Ok(view.tenants.remove(tenant_id).map(|tenant| tenant.email))
}

fn label(id: &str, email: Option<&str>) -> String {
    match email {
        Some(email) => format!("{id} ({email})"),
        None => id.to_string(),
    }
}

async fn serve(settings: Settings, demo: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let core = Core::open(&settings).await?;
    if demo {
        let mock_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let mock_addr = mock_listener.local_addr()?;
        tokio::spawn(modelrouter::mock::serve(
            mock_listener,
            modelrouter::mock::MockConfig::default(),
            std::future::pending(),
        ));
        let key = modelrouter::demo::demo_key(&settings.data_dir)?;
        modelrouter::demo::seed(&core, mock_addr, &key).await?;
        println!("Model Router demo on http://{addr} (mock upstream on http://{mock_addr}/v1)");
        println!("Try it:");
        println!(
            "  curl http://{addr}/v1/chat/completions -H 'Authorization: Bearer {key}' \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"model\":\"{}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'",
            modelrouter::demo::DEMO_MODEL
        );
    } else {
        println!("Model Router listening on http://{addr}");
    }
    modelrouter::server::serve(settings, core, listener, shutdown_signal()).await
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: draining requests, metering and allowances");
}
