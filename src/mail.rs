//! Mail to people (today: email verification links), through the configured SMTP server —
//! or, where none is configured (the demo, tests, a local setup), into the store's outbox, which
//! the demo shows each tenant in the portal.
//!
//! The outbox is a table rather than files in the data directory: every replica, and PostgreSQL
//! deployments that have no shared data directory, then see the same mail, and a tenant's mail
//! is found by tenant with one indexed query.
//!
//! Architecture invariant: a mail is sent, or kept, whole; a failure to reach the SMTP server is
//! an error for the caller to report, never a half-sent mail recorded as sent.

use std::time::Duration;

use chrono::Utc;
use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{MailSettings, SmtpSettings, SmtpTls};
use crate::store::verifications::{keep_in_outbox, OutboxMail};
use crate::store::Db;

/// How long one SMTP exchange may take before the mail counts as not sent.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// A mail to one recipient: plain text, with the one link it asks its reader to follow.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
    pub action_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail address: {0}")]
    Address(String),
    #[error("building the mail: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("outbox: {0}")]
    Outbox(#[from] sqlx::Error),
}

/// Sends `mail` through SMTP when it is configured, else keeps it in the outbox under
/// `tenant_id` (when the recipient is a tenant).
pub async fn send(
    settings: &MailSettings,
    db: &Db,
    tenant_id: Option<&str>,
    mail: Mail,
) -> Result<(), MailError> {
    let Some(smtp) = &settings.smtp else {
        let kept = OutboxMail {
            recipient: mail.to,
            subject: mail.subject,
            body: mail.body,
            action_url: mail.action_url,
            created_at: Utc::now(),
        };
        keep_in_outbox(db, tenant_id, &kept).await?;
        return Ok(());
    };
    let mailbox = |text: &str| {
        text.parse::<Mailbox>()
            .map_err(|e| MailError::Address(e.to_string()))
    };
    let message = Message::builder()
        .from(mailbox(&settings.from)?)
        .to(mailbox(&mail.to)?)
        .subject(mail.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body)?;
    transport(smtp)?.send(message).await?;
    Ok(())
}

/// A transport to the configured server. Verification mail is rare, so each mail opens its own
/// connection rather than keep a pool.
fn transport(smtp: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let tls = match smtp.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::StartTls => Tls::Required(TlsParameters::new(smtp.host.clone())?),
        SmtpTls::Tls => Tls::Wrapper(TlsParameters::new(smtp.host.clone())?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}
