//! Image sources toward Anthropic (protocols.md §5.4 step 2, §7 "image media type"): Anthropic
//! checks that base64 bytes match `media_type` and accepts only jpeg, png, gif and webp, so the
//! gateway reads the magic bytes itself instead of trusting the label a client sent.

use super::wire::ImageSource as WireImage;
use crate::protocol::canonical::{ImageSource, InvalidRequest};
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;

/// The Anthropic `source` object for an image, or a 400 for what Anthropic cannot take.
pub fn anthropic_source(source: &ImageSource) -> Result<WireImage, InvalidRequest> {
    match source {
        ImageSource::Base64 { data, .. } => base64_source(data),
        ImageSource::Url { url } => {
            if let Some(rest) = url.strip_prefix("data:") {
                // A data URL someone left in `Url`: `data:<type>;base64,<data>`.
                match rest.split_once(";base64,") {
                    Some((_, data)) => base64_source(data),
                    None => Err(unsupported("image data URLs must be base64-encoded")),
                }
            } else if url.starts_with("https://") || url.starts_with("http://") {
                Ok(WireImage::Url { url: url.clone() })
            } else {
                Err(unsupported(
                    "image URLs must be http(s) or base64 data URLs",
                ))
            }
        }
    }
}

fn base64_source(data: &str) -> Result<WireImage, InvalidRequest> {
    let media_type = sniff_media_type(data)
        .ok_or_else(|| unsupported("images must be JPEG, PNG, GIF or WebP"))?;
    Ok(WireImage::Base64 {
        media_type: media_type.to_string(),
        data: data.to_string(),
    })
}

fn unsupported(message: &str) -> InvalidRequest {
    InvalidRequest::new(message, Some("messages"))
}

/// The media type the bytes really are, from the first 12 decoded bytes.
pub fn sniff_media_type(data: &str) -> Option<&'static str> {
    let prefix: Vec<u8> = data
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .take(16)
        .collect();
    let head = &prefix[..prefix.len() - prefix.len() % 4];
    let bytes = STANDARD
        .decode(head)
        .or_else(|_| URL_SAFE.decode(head))
        .ok()?;
    media_type_of(&bytes)
}

fn media_type_of(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(&[0x89, 0x50, 0x4E, 0x47]) {
        Some("image/png")
    } else if bytes.starts_with(b"GIF") {
        Some("image/gif")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}
