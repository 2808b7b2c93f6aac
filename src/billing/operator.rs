//! What finance and operators do by hand: confirm a bank transfer with the amount received,
//! issue prepaid codes, adjust a balance. The command line names the operator by sign-in email;
//! the console passes the signed-in operator's metadata to the same rules.

use chrono::{DateTime, Utc};
use modelrouter_domain::account::AccountCommand;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::prepaid::{code_id, PrepaidCommand};
use modelrouter_domain::recharge::PaymentMethod;
use modelrouter_domain::Money;
use rand::Rng;

use super::orders::{self, Confirmation, Confirmed, TopUpError};
use crate::server::Core;
use crate::store::{email_owner, CommandError, Commands, Db, LoginKind};

/// The event metadata of an operator, found by sign-in email.
pub async fn operator(core: &Core, email: &str) -> anyhow::Result<Metadata> {
    let email = modelrouter_domain::tenant::normalize_email(email)?;
    let id = email_owner(&core.db, &email, LoginKind::Operator)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{email} is not an operator (see `admin create`)"))?;
    Ok(Metadata::new(&Actor::Operator(id)))
}

/// A tenant id, given the id itself or the tenant's sign-in email.
pub async fn tenant(core: &Core, id_or_email: &str) -> anyhow::Result<String> {
    tenant_in(&core.db, id_or_email).await
}

/// [`tenant`] with only the store: for commands that need no replay of the log.
pub async fn tenant_in(db: &Db, id_or_email: &str) -> anyhow::Result<String> {
    if id_or_email.contains('@') {
        let email = modelrouter_domain::tenant::normalize_email(id_or_email)?;
        return email_owner(db, &email, LoginKind::Tenant)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no tenant signs in as {email}"));
    }
    Ok(id_or_email.to_string())
}

/// Confirms a bank-transfer order with the amount that actually arrived. A different amount is
/// refused and flagged on the order, exactly as a provider's would be.
pub async fn confirm_transfer(
    core: &Core,
    order_id: &str,
    received: Money,
    reference: &str,
    operator_email: &str,
) -> anyhow::Result<Confirmed> {
    let metadata = operator(core, operator_email).await?;
    let confirmed_by = format!("operator:{operator_email}");
    Ok(confirm_manual(
        &core.commands,
        order_id,
        received,
        reference,
        &confirmed_by,
        &metadata,
    )
    .await?)
}

/// The rules of confirming a bank transfer, whoever confirms it (the CLI, the console): the
/// order must be a manual transfer — a provider confirms its own orders — and the amount
/// received is compared with the order's, so a different amount is refused and flagged.
pub async fn confirm_manual(
    commands: &Commands,
    order_id: &str,
    received: Money,
    reference: &str,
    confirmed_by: &str,
    metadata: &Metadata,
) -> Result<Confirmed, TopUpError> {
    let order = commands.recharges.load(order_id).await?;
    if !order.is_placed() {
        return Err(TopUpError::NotFound);
    }
    if order.method() != Some(PaymentMethod::Manual) {
        return Err(TopUpError::Invalid {
            field: "order",
            message: format!("Order {order_id} is not a bank transfer; its provider confirms it."),
        });
    }
    if !received.is_positive() {
        return Err(TopUpError::Invalid {
            field: "amount",
            message: "Enter the amount received.".into(),
        });
    }
    let confirmation = Confirmation {
        amount: received,
        currency: order.currency().to_string(),
        provider_ref: reference.to_string(),
        provider_event: format!("manual:{}", uuid::Uuid::new_v4().simple()),
        paid_at: Utc::now(),
        confirmed_by: confirmed_by.to_string(),
    };
    orders::confirm(commands, order_id, confirmation, metadata).await
}

/// A new prepaid code: 16 Crockford base32 characters in groups of four.
fn new_code() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::thread_rng();
    let chars: Vec<char> = (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    chars
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Issues `count` prepaid codes of `amount`; returns them (the only time they are shown — the
/// store keeps their hashes).
pub async fn issue_codes(
    core: &Core,
    amount: Money,
    currency: &str,
    count: usize,
    expires_at: Option<DateTime<Utc>>,
    note: &str,
    operator_email: &str,
) -> anyhow::Result<Vec<String>> {
    let metadata = operator(core, operator_email).await?;
    Ok(issue(
        &core.commands,
        amount,
        currency,
        count,
        expires_at,
        note,
        &metadata,
    )
    .await?)
}

/// How many characters of a code lists show after it was issued: its first group of four, which
/// leaves 60 random bits unknown.
pub const CODE_PREFIX_LEN: usize = 4;

/// Issues `count` prepaid codes with `metadata`'s actor; returns the codes, which exist nowhere
/// else from then on.
pub async fn issue(
    commands: &Commands,
    amount: Money,
    currency: &str,
    count: usize,
    expires_at: Option<DateTime<Utc>>,
    note: &str,
    metadata: &Metadata,
) -> Result<Vec<String>, CommandError> {
    let mut codes = Vec::with_capacity(count);
    for _ in 0..count {
        let code = new_code();
        let issue = PrepaidCommand::Issue {
            amount,
            currency: currency.to_string(),
            expires_at,
            note: note.to_string(),
            issued_at: Utc::now(),
            prefix: Some(code.chars().take(CODE_PREFIX_LEN).collect()),
        };
        commands
            .prepaid
            .execute(&code_id(&code), issue, metadata)
            .await?;
        codes.push(code);
    }
    Ok(codes)
}

/// Adjusts a tenant's balance by `amount` (negative lowers it), with the reason and the operator
/// on the event.
pub async fn adjust(
    core: &Core,
    tenant_id: &str,
    amount: Money,
    reason: &str,
    operator_email: &str,
) -> anyhow::Result<()> {
    let metadata = operator(core, operator_email).await?;
    let adjust = AccountCommand::Adjust {
        amount,
        reason: reason.to_string(),
    };
    core.commands
        .accounts
        .execute(tenant_id, adjust, &metadata)
        .await?;
    Ok(())
}
