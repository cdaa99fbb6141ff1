//! HTML rendering helpers: escaping, links, the page layout and small formatters. Every piece
//! of data that reaches a page goes through [`escape`] (or [`path`] inside URLs).

use std::fmt::Write;
use std::time::Duration;

/// The stylesheet, served at `assets/style.css`.
pub(crate) const STYLE: &str = include_str!("assets/style.css");
/// The script, served at `assets/dashboard.js`.
pub(crate) const SCRIPT: &str = include_str!("assets/dashboard.js");

/// `text` with the characters HTML gives meaning to replaced by entities, for element content
/// and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `segment` percent-encoded for one path segment or query value of a URL.
pub fn path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// A whole page: the layout around `body`, titled `title`, with breadcrumbs `crumbs`
/// (already-built hrefs and plain labels) under the header. `base` prefixes every link.
pub(crate) fn page(base: &str, title: &str, crumbs: &[(String, String)], body: &str) -> String {
    let home = if base.is_empty() { "/" } else { base };
    let mut trail = format!(r#"<a href="{home}">Overview</a>"#);
    for (href, label) in crumbs {
        let _ = write!(
            trail,
            r#" <span class="sep">/</span> <a href="{}">{}</a>"#,
            escape(href),
            escape(label)
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · tito</title>
<link rel="stylesheet" href="{base}/assets/style.css">
<script defer src="{base}/assets/dashboard.js"></script>
</head>
<body>
<header><a class="brand" href="{home}">tito</a><span class="tagline">dashboard</span></header>
<nav class="crumbs">{trail}</nav>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// A table with header `head` and rows of already-rendered cells.
pub(crate) fn table(class: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(r#"<table class="{class}"><thead><tr>"#);
    for h in head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            out,
            r#"<tr><td class="empty" colspan="{}">Nothing here.</td></tr>"#,
            head.len()
        );
    }
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A link to `href` reading `label`, both escaped.
pub(crate) fn link(href: &str, label: &str) -> String {
    format!(r#"<a href="{}">{}</a>"#, escape(href), escape(label))
}

/// `n` with thousands separators.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration as its largest unit or two: `3h 2m`, `45s`, `120ms`.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// At most `max` characters of `text`, with an ellipsis if it was longer.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Micros since the epoch as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn timestamp(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let (days, rest) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_encodes_paths() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(path("a b/é?"), "a%20b%2F%C3%A9%3F");
    }

    #[test]
    fn formats_counts_ages_and_times() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(age(Duration::from_millis(120)), "120ms");
        assert_eq!(age(Duration::from_secs(3725)), "1h 2m");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp(1_767_225_600_000_000), "2026-01-01 00:00:00");
    }
}
