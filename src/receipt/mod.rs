//! Receipts ("vouchers") for paid recharge orders: a verification code the platform can check,
//! and the receipt as a one-page A4 PDF.
//!
//! The code is an HMAC under a key derived from the master key, so only the platform can issue
//! one, and anyone holding a receipt can ask the platform whether it is genuine: the platform
//! loads the order by its number, rebuilds the `Receipt` and calls [`verify`].
//!
//! Architecture Invariant: this module is pure. It neither loads orders nor serves pages; callers
//! pass a `Receipt` in and get a code or PDF bytes out. Money stays integer micro-units to the
//! last digit shown (floats appear only as page coordinates).

use chrono::{DateTime, Utc};
use modelrouter_domain::Money;
use pdf_writer::types::{ActionType, AnnotationType};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use subtle::ConstantTimeEq;

use crate::crypto::MasterKey;

/// What a receipt says about one paid top-up order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The order number, e.g. `R-20261125-7K3QX9`.
    pub order_id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub tenant_email: String,
    /// Micro-units of `currency`.
    pub amount: Money,
    /// `USD`.
    pub currency: String,
    /// Display text: `Card (Stripe)`, `Bank transfer`, `Sandbox`.
    pub method: String,
    /// The payment provider's id for the payment, when there is one.
    pub provider_ref: Option<String>,
    pub paid_at: DateTime<Utc>,
}

/// Who issues receipts and where they can be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// `Model Router`.
    pub name: String,
    /// e.g. `https://gw.example.com/receipts/verify`.
    pub verify_url: String,
}

/// The MAC purpose of receipt codes; a new scheme gets a new version so old codes fail cleanly.
const MAC_PURPOSE: &str = "receipt-verification-v1";

/// Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or retyped survives.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Symbols in a code: 16 × 5 bits = the first 80 bits of the MAC.
const CODE_SYMBOLS: usize = 16;

/// A short code that proves the platform issued this receipt: an HMAC under a key derived from the
/// master key over the canonical fields (order id, tenant id, amount micro-units, currency,
/// paid_at as Unix seconds), shown as 16 characters of Crockford base32 in groups of four
/// (`7K3Q-X9AB-…`). Changing any field changes the code.
///
/// Names, email, method and provider reference are display text and are not covered: the
/// platform checks a code against the order it has on record, which carries those itself.
pub fn verification_code(key: &MasterKey, receipt: &Receipt) -> String {
    let symbols = code_symbols(key, receipt);
    let groups: Vec<&str> = symbols
        .chunks(4)
        .map(|group| std::str::from_utf8(group).unwrap_or_default())
        .collect();
    groups.join("-")
}

/// Whether `code` (case-insensitive, dashes/spaces ignored, Crockford's I/L→1 and O→0 accepted) is
/// this receipt's code; constant-time comparison.
pub fn verify(key: &MasterKey, receipt: &Receipt, code: &str) -> bool {
    let Some(given) = normalize_code(code) else {
        return false;
    };
    let expected = code_symbols(key, receipt);
    expected.as_slice().ct_eq(given.as_slice()).into()
}

/// An amount as a receipt shows it, by integer arithmetic: `12.50 USD`, `0.000125 USD` — at least
/// two decimals, up to six, trailing zeros trimmed beyond two.
pub fn format_amount(amount: Money, currency: &str) -> String {
    let micros = amount.micros();
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let unit = Money::MICROS_PER_UNIT.unsigned_abs();
    let (whole, mut fraction, mut digits) = (abs / unit, abs % unit, 6);
    while digits > 2 && fraction % 10 == 0 {
        fraction /= 10;
        digits -= 1;
    }
    format!("{sign}{whole}.{fraction:0digits$} {currency}")
}

/// The receipt as a one-page A4 PDF.
///
/// Text is set in the standard Helvetica fonts with WinAnsiEncoding, so nothing is embedded;
/// characters outside that encoding print as `?`, and a value too long for its place ends in `…`.
pub fn render_pdf(receipt: &Receipt, code: &str, issuer: &Issuer) -> Vec<u8> {
    let mut page = Page::new();
    let annotations = draw(&mut page, receipt, code, issuer);

    let catalog_id = Ref::new(1);
    let page_tree_id = Ref::new(2);
    let page_id = Ref::new(3);
    let regular_id = Ref::new(4);
    let bold_id = Ref::new(5);
    let content_id = Ref::new(6);
    let info_id = Ref::new(7);
    let annotation_ids: Vec<Ref> = (8..).map(Ref::new).take(annotations.len()).collect();

    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id).pages(page_tree_id);
    pdf.pages(page_tree_id).kids([page_id]).count(1);
    let mut pdf_page = pdf.page(page_id);
    pdf_page
        .parent(page_tree_id)
        .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
        .contents(content_id);
    if !annotation_ids.is_empty() {
        pdf_page.annotations(annotation_ids.iter().copied());
    }
    pdf_page
        .resources()
        .fonts()
        .pair(Font::Regular.name(), regular_id)
        .pair(Font::Bold.name(), bold_id);
    pdf_page.finish();

    for (id, base) in [(regular_id, "Helvetica"), (bold_id, "Helvetica-Bold")] {
        pdf.type1_font(id)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (id, link) in annotation_ids.iter().zip(&annotations) {
        let mut annotation = pdf.annotation(*id);
        annotation
            .subtype(AnnotationType::Link)
            .rect(link.rect)
            .border(0.0, 0.0, 0.0, None);
        annotation
            .action()
            .action_type(ActionType::Uri)
            .uri(Str(link.uri.as_bytes()));
    }
    pdf.stream(content_id, &page.content.finish());

    let title = format!("Receipt {}", receipt.order_id);
    pdf.document_info(info_id)
        .title(TextStr(&title))
        .author(TextStr(&issuer.name))
        .creator(TextStr(&issuer.name))
        .producer(TextStr(&issuer.name));
    pdf.finish()
}

// ---- the code ----------------------------------------------------------------------------------

/// The fields the code covers, in order: order id, tenant id, amount in micro-units, currency,
/// paid_at in Unix seconds. Text is its UTF-8 bytes after a big-endian u64 length, so no two
/// receipts encode alike; numbers are big-endian i64.
fn canonical_message(receipt: &Receipt) -> Vec<u8> {
    fn text(message: &mut Vec<u8>, value: &str) {
        let len = u64::try_from(value.len()).unwrap_or(u64::MAX);
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(value.as_bytes());
    }
    let mut message = Vec::new();
    text(&mut message, &receipt.order_id);
    text(&mut message, &receipt.tenant_id);
    message.extend_from_slice(&receipt.amount.micros().to_be_bytes());
    text(&mut message, &receipt.currency);
    message.extend_from_slice(&receipt.paid_at.timestamp().to_be_bytes());
    message
}

/// The 16 code symbols, without dashes.
fn code_symbols(key: &MasterKey, receipt: &Receipt) -> [u8; CODE_SYMBOLS] {
    let mac = key.mac(MAC_PURPOSE, &canonical_message(receipt));
    let bits = mac[..10]
        .iter()
        .fold(0u128, |acc, byte| (acc << 8) | u128::from(*byte));
    let mut symbols = [0u8; CODE_SYMBOLS];
    for (i, symbol) in symbols.iter_mut().enumerate() {
        let shift = 5 * (CODE_SYMBOLS - 1 - i);
        *symbol = CROCKFORD[((bits >> shift) & 0x1f) as usize];
    }
    symbols
}

/// A typed code as canonical symbols, or `None` when it cannot be a code at all.
fn normalize_code(code: &str) -> Option<Vec<u8>> {
    let mut symbols = Vec::with_capacity(CODE_SYMBOLS);
    for c in code.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let symbol = match c.to_ascii_uppercase() {
            'I' | 'L' => b'1',
            'O' => b'0',
            other if other.is_ascii() && CROCKFORD.contains(&(other as u8)) => other as u8,
            _ => return None,
        };
        symbols.push(symbol);
        if symbols.len() > CODE_SYMBOLS {
            return None;
        }
    }
    (symbols.len() == CODE_SYMBOLS).then_some(symbols)
}

// ---- the page ----------------------------------------------------------------------------------

/// A4 in points.
const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const LEFT: f32 = 64.0;
const RIGHT: f32 = PAGE_WIDTH - 64.0;
/// Where table values start.
const VALUE_X: f32 = LEFT + 150.0;

const INK: Rgb = Rgb(0.11, 0.12, 0.14);
const MUTED: Rgb = Rgb(0.42, 0.44, 0.48);
const ACCENT: Rgb = Rgb(0.10, 0.27, 0.50);
const HAIRLINE: Rgb = Rgb(0.84, 0.85, 0.87);
const PANEL: Rgb = Rgb(0.96, 0.97, 0.98);

/// WinAnsi's horizontal ellipsis.
const ELLIPSIS: u8 = 0x85;

/// Lays the receipt out on `page`; returns the link areas to annotate.
fn draw(page: &mut Page, receipt: &Receipt, code: &str, issuer: &Issuer) -> Vec<Link> {
    let width = RIGHT - LEFT;

    // Header: a band of accent colour, the issuer, and a rule.
    page.fill_rect(0.0, PAGE_HEIGHT - 8.0, PAGE_WIDTH, 8.0, ACCENT);
    page.text(ISSUER, LEFT, 774.0, &issuer.name, width);
    page.rule(LEFT, RIGHT, 758.0, 0.75, HAIRLINE);

    // Title on the left, the amount on the right: what a reader looks for first. An amount is
    // never cut short; a very long one is set smaller instead.
    let title_width = page.text(TITLE, LEFT, 710.0, "Receipt", width);
    let amount = format_amount(receipt.amount, &receipt.currency);
    let amount_max = width - title_width - 24.0;
    let amount_style = AMOUNT.shrunk_to_fit(amount_max, &win_ansi(&amount), 12.0);
    page.text_right(amount_style, RIGHT, 712.0, &amount, amount_max);
    let subtitle = "Prepaid balance top-up \u{2014} payment received";
    page.text(SUBTITLE, LEFT, 690.0, subtitle, width / 2.0);
    page.text_right(SUBTITLE, RIGHT, 690.0, "Amount paid", width / 2.0);

    // The details, one labelled line each.
    let paid_on = receipt.paid_at.format("%Y-%m-%d %H:%M:%S").to_string();
    let provider_ref = receipt.provider_ref.as_deref().unwrap_or("\u{2014}");
    let rows: [(&str, &str, Style); 8] = [
        ("Receipt for order", &receipt.order_id, VALUE_STRONG),
        ("Paid on (UTC)", &paid_on, VALUE),
        ("Customer name", &receipt.tenant_name, VALUE),
        ("Customer email", &receipt.tenant_email, VALUE),
        ("Account id", &receipt.tenant_id, VALUE),
        ("Amount", &amount, VALUE_STRONG),
        ("Payment method", &receipt.method, VALUE),
        ("Provider reference", provider_ref, VALUE),
    ];
    let mut y = 646.0;
    page.rule(LEFT, RIGHT, y + 18.0, 0.5, HAIRLINE);
    for (label, value, style) in rows {
        page.text(LABEL, LEFT, y, label, VALUE_X - LEFT - 8.0);
        page.text(style, VALUE_X, y, value, RIGHT - VALUE_X);
        page.rule(LEFT, RIGHT, y - 9.0, 0.5, HAIRLINE);
        y -= 27.0;
    }

    // The verification panel: the code, large, and how to check it.
    let padding = 18.0;
    let inner = width - 2.0 * padding;
    let check = format!(
        "Check this receipt at {} with the order number and code.",
        issuer.verify_url
    );
    let lines = wrap(BODY, inner, &check, 3);
    let line_height = 14.0;
    let panel_top = y - 14.0;
    let panel_height = 86.0 + line_height * lines.len() as f32;
    page.panel(LEFT, panel_top - panel_height, width, panel_height);
    let x = LEFT + padding;
    page.text(LABEL, x, panel_top - 24.0, "Verification code", inner);
    page.text(CODE, x, panel_top - 56.0, code, inner);
    let url = win_ansi(&issuer.verify_url);
    let mut links = Vec::new();
    let mut line_y = panel_top - 82.0;
    for line in &lines {
        page.show(BODY, x, line_y, line);
        if let Some(start) = find(line, &url) {
            let left = x + BODY.width(&line[..start]);
            let right = left + BODY.width(&url);
            links.push(Link {
                rect: Rect::new(left, line_y - 3.0, right, line_y + 10.0),
                uri: issuer.verify_url.clone(),
            });
        }
        line_y -= line_height;
    }

    // Footer.
    page.rule(LEFT, RIGHT, 72.0, 0.5, HAIRLINE);
    let footer = format!(
        "Issued electronically by {}. The verification code confirms this receipt is genuine; \
         no signature is required.",
        issuer.name
    );
    for (i, line) in wrap(FOOTNOTE, width, &footer, 2).iter().enumerate() {
        page.show(FOOTNOTE, LEFT, 58.0 - 11.0 * i as f32, line);
    }
    links
}

/// A clickable area of the page.
struct Link {
    rect: Rect,
    uri: String,
}

#[derive(Clone, Copy)]
struct Rgb(f32, f32, f32);

#[derive(Clone, Copy)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    fn name(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
        }
    }

    /// Advance widths of WinAnsi codes 32..=255, in thousandths of the font size.
    fn widths(self) -> &'static [u16; 224] {
        match self {
            Font::Regular => &HELVETICA,
            Font::Bold => &HELVETICA_BOLD,
        }
    }
}

/// How a piece of text is set.
#[derive(Clone, Copy)]
struct Style {
    font: Font,
    size: f32,
    color: Rgb,
    /// Extra space after each character, in points.
    spacing: f32,
}

const fn style(font: Font, size: f32, color: Rgb) -> Style {
    Style {
        font,
        size,
        color,
        spacing: 0.0,
    }
}

const ISSUER: Style = style(Font::Bold, 16.0, ACCENT);
const TITLE: Style = style(Font::Bold, 28.0, INK);
const AMOUNT: Style = style(Font::Bold, 22.0, INK);
const SUBTITLE: Style = style(Font::Regular, 10.5, MUTED);
const LABEL: Style = style(Font::Regular, 9.5, MUTED);
const VALUE: Style = style(Font::Regular, 11.0, INK);
const VALUE_STRONG: Style = style(Font::Bold, 11.0, INK);
const CODE: Style = Style {
    spacing: 1.5,
    ..style(Font::Bold, 24.0, INK)
};
const BODY: Style = style(Font::Regular, 10.0, INK);
const FOOTNOTE: Style = style(Font::Regular, 8.5, MUTED);

impl Style {
    /// The width of WinAnsi `bytes`, in points. No kerning: the PDF sets none either.
    fn width(self, bytes: &[u8]) -> f32 {
        let widths = self.font.widths();
        let units: u32 = bytes
            .iter()
            .map(|&b| {
                b.checked_sub(32)
                    .map_or(0, |i| u32::from(widths[usize::from(i)]))
            })
            .sum();
        units as f32 * self.size / 1000.0 + self.spacing * bytes.len() as f32
    }

    /// This style, set smaller (down to `min_size`) if that is what it takes to fit `bytes` in
    /// `max` points.
    fn shrunk_to_fit(self, max: f32, bytes: &[u8], min_size: f32) -> Style {
        let width = self.width(bytes);
        if width <= max || width <= 0.0 {
            return self;
        }
        Style {
            // A hair under the exact ratio, so rounding cannot push the text over `max`.
            size: (self.size * max / width * 0.99).max(min_size),
            ..self
        }
    }

    /// `bytes`, or as much of them as fits in `max` points followed by `…`.
    fn fit(self, max: f32, bytes: &[u8]) -> Vec<u8> {
        if self.width(bytes) <= max {
            return bytes.to_vec();
        }
        let ellipsis = self.width(&[ELLIPSIS]);
        let mut kept = bytes.to_vec();
        while !kept.is_empty() && self.width(&kept) + ellipsis > max {
            kept.pop();
        }
        while kept.last() == Some(&b' ') {
            kept.pop();
        }
        kept.push(ELLIPSIS);
        kept
    }
}

/// A content stream with the few drawing verbs a receipt needs.
struct Page {
    content: Content,
}

impl Page {
    fn new() -> Page {
        Page {
            content: Content::new(),
        }
    }

    /// `text` starting at (x, y), cut to `max` points with `…`; returns the width it took.
    fn text(&mut self, style: Style, x: f32, y: f32, text: &str, max: f32) -> f32 {
        let bytes = style.fit(max, &win_ansi(text));
        self.show(style, x, y, &bytes);
        style.width(&bytes)
    }

    /// `text` ending at `right`, cut to `max` points; returns the width it took.
    fn text_right(&mut self, style: Style, right: f32, y: f32, text: &str, max: f32) -> f32 {
        let bytes = style.fit(max, &win_ansi(text));
        let width = style.width(&bytes);
        self.show(style, right - width, y, &bytes);
        width
    }

    /// WinAnsi bytes as they are.
    fn show(&mut self, style: Style, x: f32, y: f32, bytes: &[u8]) {
        let Rgb(r, g, b) = style.color;
        self.content
            .set_fill_rgb(r, g, b)
            .begin_text()
            .set_font(style.font.name(), style.size)
            .set_char_spacing(style.spacing)
            .next_line(x, y)
            .show(Str(bytes))
            .end_text();
    }

    fn rule(&mut self, x1: f32, x2: f32, y: f32, thickness: f32, color: Rgb) {
        let Rgb(r, g, b) = color;
        self.content
            .set_stroke_rgb(r, g, b)
            .set_line_width(thickness)
            .move_to(x1, y)
            .line_to(x2, y)
            .stroke();
    }

    fn fill_rect(&mut self, x: f32, y: f32, width: f32, height: f32, color: Rgb) {
        let Rgb(r, g, b) = color;
        self.content
            .set_fill_rgb(r, g, b)
            .rect(x, y, width, height)
            .fill_nonzero();
    }

    /// A lightly filled, hairline-bordered box.
    fn panel(&mut self, x: f32, y: f32, width: f32, height: f32) {
        let (Rgb(r, g, b), Rgb(sr, sg, sb)) = (PANEL, HAIRLINE);
        self.content
            .set_fill_rgb(r, g, b)
            .set_stroke_rgb(sr, sg, sb)
            .set_line_width(0.75)
            .rect(x, y, width, height)
            .fill_nonzero_and_stroke();
    }
}

/// `text` broken at spaces into at most `max_lines` lines of WinAnsi bytes, each within `max`
/// points; a word longer than a line, or text beyond the last line, is cut with `…`.
fn wrap(style: Style, max: f32, text: &str, max_lines: usize) -> Vec<Vec<u8>> {
    let bytes = win_ansi(text);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for word in bytes.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let mut candidate = line.clone();
        if !candidate.is_empty() {
            candidate.push(b' ');
        }
        candidate.extend_from_slice(word);
        if line.is_empty() || style.width(&candidate) <= max {
            line = candidate;
        } else {
            lines.push(style.fit(max, &line));
            line = word.to_vec();
        }
    }
    lines.push(style.fit(max, &line));
    if lines.len() > max_lines.max(1) {
        let mut rest = lines.split_off(max_lines.max(1) - 1).join(&b' ');
        rest.extend_from_slice(&[b' ', ELLIPSIS]);
        lines.push(style.fit(max, &rest));
    }
    lines
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `text` in WinAnsiEncoding, one byte a character; what the encoding lacks becomes `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars().map(win_ansi_byte).collect()
}

fn win_ansi_byte(c: char) -> u8 {
    match c {
        // ASCII and the Latin-1 supplement sit at their own code points.
        ' '..='~' | '\u{A0}'..='\u{FF}' => c as u8,
        '\t' | '\n' | '\r' => b' ',
        _ => WIN_ANSI_EXTRAS
            .iter()
            .find(|(extra, _)| *extra == c)
            .map_or(b'?', |(_, byte)| *byte),
    }
}

/// The characters WinAnsiEncoding puts at 0x80..=0x9F.
const WIN_ANSI_EXTRAS: [(char, u8); 27] = [
    ('\u{20AC}', 0x80), // €
    ('\u{201A}', 0x82), // ‚
    ('\u{0192}', 0x83), // ƒ
    ('\u{201E}', 0x84), // „
    ('\u{2026}', 0x85), // …
    ('\u{2020}', 0x86), // †
    ('\u{2021}', 0x87), // ‡
    ('\u{02C6}', 0x88), // ˆ
    ('\u{2030}', 0x89), // ‰
    ('\u{0160}', 0x8A), // Š
    ('\u{2039}', 0x8B), // ‹
    ('\u{0152}', 0x8C), // Œ
    ('\u{017D}', 0x8E), // Ž
    ('\u{2018}', 0x91), // ‘
    ('\u{2019}', 0x92), // ’
    ('\u{201C}', 0x93), // “
    ('\u{201D}', 0x94), // ”
    ('\u{2022}', 0x95), // •
    ('\u{2013}', 0x96), // –
    ('\u{2014}', 0x97), // —
    ('\u{02DC}', 0x98), // ˜
    ('\u{2122}', 0x99), // ™
    ('\u{0161}', 0x9A), // š
    ('\u{203A}', 0x9B), // ›
    ('\u{0153}', 0x9C), // œ
    ('\u{017E}', 0x9E), // ž
    ('\u{0178}', 0x9F), // Ÿ
];

/// Helvetica's advance widths (Adobe's AFM) for WinAnsi codes 0x20..=0xFF; 0 where the encoding
/// has no character.
#[rustfmt::skip]
const HELVETICA: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0x30
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // 0x50
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // 0x60
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 0, // 0x70
    556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0, // 0x80
    0, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 667, // 0x90
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 0xA0
    400, 584, 333, 333, 333, 578, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 0xB0
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 0xC0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 0xD0
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278, // 0xE0
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500, // 0xF0
];

/// Helvetica-Bold's advance widths, laid out like `HELVETICA`.
#[rustfmt::skip]
const HELVETICA_BOLD: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 0x30
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // 0x50
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // 0x60
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 0, // 0x70
    556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0, // 0x80
    0, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 667, // 0x90
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 0xA0
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 0xB0
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 0xC0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 0xD0
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278, // 0xE0
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556, // 0xF0
];

#[cfg(test)]
mod tests;
