//! An HTML part as text. mail-parser's `html_to_text` ends a line only at `<br>` and `</p>`,
//! so an HTML-only mail's divs, list items, headings and table rows ran together
//! ("ThreeabLine"); this marks those boundaries with `<br>` (list items with "- ", table
//! cells with a space; empty lines dropped) and then lets mail-parser turn the HTML into text.

/// Elements that start and end a line (and `p`, which mail-parser ends itself).
const BLOCKS: [&str; 17] = [
    "div",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "table",
    "blockquote",
    "pre",
    "dt",
    "dd",
    "section",
];

/// The text of an HTML part, with block boundaries as line ends.
pub fn to_text(html: &str) -> String {
    let mut marked = String::with_capacity(html.len() + html.len() / 8);
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        marked.push_str(&rest[..at]);
        let tag = &rest[at..];
        let end = tag.find('>').map_or(tag.len(), |e| e + 1);
        let (closing, name) = match tag[1..].strip_prefix('/') {
            Some(n) => (true, n),
            None => (false, &tag[1..]),
        };
        let len = name.bytes().take_while(u8::is_ascii_alphanumeric).count();
        let name = name[..len].to_ascii_lowercase();
        match (closing, name.as_str()) {
            // A block starts and ends a line (the empty lines this makes are dropped below).
            (_, n) if BLOCKS.contains(&n) || n == "p" => marked.push_str("<br>"),
            (true, "td" | "th") => marked.push(' '),
            _ => {}
        }
        marked.push_str(&tag[..end]);
        if !closing && name == "li" {
            marked.push_str("- ");
        }
        rest = &tag[end..];
    }
    marked.push_str(rest);
    let text = mail_parser::decoders::html::html_to_text(&marked);
    // Nested blocks end several at once: one line end, and no line of spaces alone.
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}
