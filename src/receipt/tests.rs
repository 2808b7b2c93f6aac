//! Tests of `receipt`.

use super::*;
use chrono::TimeZone;

fn key() -> MasterKey {
    MasterKey::parse(&"07".repeat(32)).expect("a valid key")
}

fn issuer() -> Issuer {
    Issuer {
        name: "Model Router".into(),
        verify_url: "https://gw.example.com/receipts/verify".into(),
    }
}

fn receipt() -> Receipt {
    Receipt {
        order_id: "R-20261125-7K3QX9".into(),
        tenant_id: "tn_01JD8Z4QK2M7".into(),
        tenant_name: "Acme Analytics GmbH".into(),
        tenant_email: "billing@acme-analytics.example".into(),
        amount: Money(12_500_000),
        currency: "USD".into(),
        method: "Card (Stripe)".into(),
        provider_ref: Some("pi_3QxK2L8s9dF7aB1c0Y4zT5uV".into()),
        paid_at: Utc
            .with_ymd_and_hms(2026, 11, 25, 14, 3, 27)
            .single()
            .expect("a valid time"),
    }
}

fn page_text(pdf: &[u8]) -> String {
    let document = lopdf::Document::load_mem(pdf).expect("the PDF parses");
    let pages = document.get_pages();
    assert_eq!(pages.len(), 1, "one page");
    document.extract_text(&[1]).expect("text extracts")
}

#[test]
fn the_code_is_stable_grouped_crockford() {
    let code = verification_code(&key(), &receipt());
    assert_eq!(code, verification_code(&key(), &receipt()));
    assert_eq!(code.len(), 19, "{code}");
    for (i, c) in code.chars().enumerate() {
        if i % 5 == 4 {
            assert_eq!(c, '-', "{code}");
        } else {
            assert!(CROCKFORD.contains(&(c as u8)), "{code}");
        }
    }
    assert!(verify(&key(), &receipt(), &code));
}

#[test]
fn the_code_depends_on_the_key() {
    let other = MasterKey::parse(&"08".repeat(32)).expect("a valid key");
    let code = verification_code(&key(), &receipt());
    assert_ne!(code, verification_code(&other, &receipt()));
    assert!(!verify(&other, &receipt(), &code));
}

#[test]
fn changing_any_covered_field_changes_the_code() {
    let original = verification_code(&key(), &receipt());
    type Change = fn(&mut Receipt);
    let changes: [(&str, Change); 5] = [
        ("amount by one micro-unit", |r| {
            r.amount = Money(r.amount.0 + 1)
        }),
        ("paid_at by one second", |r| {
            r.paid_at += chrono::Duration::seconds(1)
        }),
        ("order id", |r| r.order_id = "R-20261125-7K3QX8".into()),
        ("tenant id", |r| r.tenant_id = "tn_01JD8Z4QK2M8".into()),
        ("currency", |r| r.currency = "EUR".into()),
    ];
    for (what, change) in changes {
        let mut changed = receipt();
        change(&mut changed);
        assert_ne!(verification_code(&key(), &changed), original, "{what}");
        assert!(!verify(&key(), &changed, &original), "{what}");
    }
}

#[test]
fn fields_do_not_run_into_each_other() {
    let mut a = receipt();
    a.order_id = "R-1".into();
    a.tenant_id = "2".into();
    let mut b = receipt();
    b.order_id = "R-12".into();
    b.tenant_id = String::new();
    assert_ne!(verification_code(&key(), &a), verification_code(&key(), &b));
}

#[test]
fn verify_accepts_how_people_retype_a_code() {
    // A receipt whose code has a 0 and a 1, so O, I and L are really exercised.
    let mut sample = receipt();
    let code = (0..1000)
        .find_map(|n| {
            sample.order_id = format!("R-20261125-{n:06}");
            let code = verification_code(&key(), &sample);
            (code.contains('0') && code.contains('1')).then_some(code)
        })
        .expect("some order has a code with 0 and 1");
    for typed in [
        code.to_lowercase(),
        code.replace('-', ""),
        code.replace('-', " "),
        format!("  {code}  "),
        code.replace('0', "O"),
        code.replace('0', "o").replace('1', "l"),
        code.replace('1', "I"),
    ] {
        assert!(verify(&key(), &sample, &typed), "{typed} for {code}");
    }
}

#[test]
fn verify_rejects_a_code_one_character_off() {
    let code = verification_code(&key(), &receipt());
    for (i, c) in code.char_indices().filter(|(_, c)| *c != '-') {
        let other = if c == 'Z' { 'Y' } else { 'Z' };
        let mut typo = code.clone();
        typo.replace_range(i..=i, &other.to_string());
        assert!(!verify(&key(), &receipt(), &typo), "{typo}");
    }
    let short = &code[..code.len() - 1];
    // U is not a Crockford symbol, and a code with one more symbol is not this code.
    let with_u = format!("U{}", &code[1..]);
    for wrong in ["", short, &format!("{code}0"), &with_u] {
        assert!(!verify(&key(), &receipt(), wrong), "{wrong:?}");
    }
}

#[test]
fn amounts_format_with_integer_arithmetic() {
    for (micros, shown) in [
        (12_500_000, "12.50 USD"),
        (0, "0.00 USD"),
        (1, "0.000001 USD"),
        (120_000, "0.12 USD"),
        (123_400, "0.1234 USD"),
        (12_345_678, "12.345678 USD"),
        (1_000_000_000, "1000.00 USD"),
        (-2_500_000, "-2.50 USD"),
        (i64::MAX, "9223372036854.775807 USD"),
        (i64::MIN, "-9223372036854.775808 USD"),
    ] {
        assert_eq!(format_amount(Money(micros), "USD"), shown);
    }
}

#[test]
fn text_maps_to_win_ansi_and_anything_else_to_a_question_mark() {
    assert_eq!(win_ansi("Café"), b"Caf\xe9");
    assert_eq!(win_ansi("€5 \u{2014} ok"), b"\x805 \x97 ok");
    assert_eq!(win_ansi("株式会社 Ω"), b"???? ?");
    assert_eq!(win_ansi("a\tb\n"), b"a b ");
}

#[test]
fn fitted_text_stays_within_its_width() {
    let long = win_ansi(&"Wide Name ".repeat(20));
    let fitted = VALUE.fit(200.0, &long);
    assert!(VALUE.width(&fitted) <= 200.0);
    assert_eq!(fitted.last(), Some(&ELLIPSIS));
    assert_eq!(VALUE.fit(200.0, b"short"), b"short");
}

#[test]
fn the_pdf_is_one_page_with_the_receipt_on_it() {
    let code = verification_code(&key(), &receipt());
    let pdf = render_pdf(&receipt(), &code, &issuer());
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(pdf.ends_with(b"%%EOF"));
    let text = page_text(&pdf);
    for expected in [
        "Model Router",
        "Receipt",
        "R-20261125-7K3QX9",
        "2026-11-25 14:03:27",
        "Acme Analytics GmbH",
        "billing@acme-analytics.example",
        "tn_01JD8Z4QK2M7",
        "12.50 USD",
        "Card (Stripe)",
        "pi_3QxK2L8s9dF7aB1c0Y4zT5uV",
        &code,
        "Check this receipt at https://gw.example.com/receipts/verify with the order number \
         and code.",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from {text}");
    }
}

#[test]
fn a_long_name_is_cut_with_an_ellipsis() {
    let mut long = receipt();
    long.tenant_name = format!("Long Name {}", "x".repeat(190));
    let pdf = render_pdf(&long, "ABCD-EFGH-JKMN-PQRS", &issuer());
    let text = page_text(&pdf);
    assert!(!text.contains(&long.tenant_name), "{text}");
    let shown = text
        .lines()
        .find(|line| line.contains("Long Name"))
        .expect("the name is shown");
    assert!(shown.trim_end().ends_with("x\u{2026}"), "{shown:?}");
    assert!(shown.len() > 30, "{shown:?}");
}

#[test]
fn a_huge_amount_is_shown_whole() {
    let mut huge = receipt();
    huge.amount = Money(i64::MAX);
    let text = page_text(&render_pdf(&huge, "ABCD-EFGH-JKMN-PQRS", &issuer()));
    assert_eq!(
        text.matches("9223372036854.775807 USD").count(),
        2,
        "{text}"
    );
}

#[test]
fn names_outside_win_ansi_render() {
    let mut foreign = receipt();
    foreign.tenant_name = "株式会社 Ω".into();
    foreign.method = "Überweisung — “SEPA”".into();
    foreign.provider_ref = None;
    let pdf = render_pdf(&foreign, "ABCD-EFGH-JKMN-PQRS", &issuer());
    let text = page_text(&pdf);
    assert!(text.contains("???? ?"), "{text}");
    assert!(text.contains("Überweisung — “SEPA”"), "{text}");
}

#[test]
fn a_sample_receipt_is_written_for_people_to_look_at() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-output");
    std::fs::create_dir_all(&dir).expect("test-output is writable");
    let code = verification_code(&key(), &receipt());
    let pdf = render_pdf(&receipt(), &code, &issuer());
    std::fs::write(dir.join("receipt-sample.pdf"), &pdf).expect("the sample is written");
}
