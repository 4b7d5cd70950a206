//! HTML (and XML) escaping: the one escaper for text placed in HTML or SVG content and
//! attribute values. Used by the report's HTML and SVG renderers and by the demo app's
//! page; it knows neither, so the lab side (the demo app the kubelet runs) and the toolkit
//! share it as they share `atomic`.
//!
//! Not for Markdown: Markdown escaping is a different job (backslashes, table pipes, code
//! spans) and lives with the two Markdown writers (`report::markdown`, `cli_docs`).

/// Escapes `&`, `<`, `>`, `"` and `'`, which is enough for element content and for
/// quoted attribute values alike.
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

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_and_quotes_become_entities_and_other_text_stays() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("blue → green, 5 ms"), "blue → green, 5 ms");
        assert_eq!(
            escape("&amp;"),
            "&amp;amp;",
            "text that already holds an entity is escaped again"
        );
    }
}
