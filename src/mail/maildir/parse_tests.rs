//! Real MIME messages from tests/fixtures/mail, parsed.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parsed(name: &str) -> Mail {
    parse(&fixture(name), 1 << 20).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn multipart_quoted_printable_latin1_with_encoded_subject_and_names() {
    let m = parsed("multipart-qp-latin1.eml");
    assert_eq!(m.message_id, "printer-1@example.com");
    assert!(!m.synthetic_id);
    assert_eq!(m.subject, "Drucker im 3. Stock defekt – bitte um Hilfe");
    let from = m.from.as_ref().unwrap();
    assert_eq!(from.address, "joerg@example.com");
    assert_eq!(from.name.as_deref(), Some("Jörg Müller"));
    let to: Vec<&str> = m.to.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(to, ["servicedesk@example.com"]);
    let cc: Vec<String> = m.cc.iter().map(ToString::to_string).collect();
    assert_eq!(cc, ["bob@example.com", "Carol C. <carol@example.com>"]);
    assert_eq!(m.date, Some("2026-01-05T08:15:00Z".parse().unwrap()));
    assert!(
        m.body.contains("nur noch weiße Seiten. Könnt ihr helfen?"),
        "{}",
        m.body
    );
    assert!(m.body.ends_with("Grüße, Jörg"), "{}", m.body);
    assert!(
        !m.body.contains("<p>"),
        "the HTML alternative is not the body"
    );
    assert!(!m.html_only);
    assert!(m.attachments.is_empty());
    assert_eq!(m.header("return-path"), Some("joerg@example.com"));
    assert_eq!(m.header("MIME-Version"), Some("1.0"));
    assert_eq!(m.noise(), None);
    assert_eq!(m.returned, None);
}

#[test]
fn html_only_mail_becomes_readable_text() {
    let m = parsed("html-only.eml");
    assert!(m.html_only);
    assert!(m.body.contains("VPN down"), "{}", m.body);
    assert!(
        m.body
            .contains("Since 08:00 nobody can connect to the VPN & the portal."),
        "{}",
        m.body
    );
    assert!(m.body.contains("Grüße"), "{}", m.body);
    for tag in ["<", "color: red", "&amp;"] {
        assert!(!m.body.contains(tag), "{tag:?} left in {:?}", m.body);
    }
}

#[test]
fn attachments_are_listed_and_kept_up_to_the_limit() {
    let raw = fixture("attachments.eml");
    let m = parse(&raw, 64).unwrap();
    assert_eq!(m.body, "The invoice costs 100 € – see attached.");
    assert_eq!(m.attachments.len(), 2, "{:?}", m.attachments);
    let pdf = &m.attachments[0];
    assert_eq!(pdf.name, "report.pdf");
    assert_eq!(pdf.content_type, "application/pdf");
    assert_eq!(
        pdf.content.as_deref(),
        Some(&b"%PDF-1.4\n% tiny test pdf\n%%EOF\n"[..])
    );
    assert_eq!(pdf.size, 31);
    let png = &m.attachments[1];
    assert_eq!(png.name, "Bildschirmfoto über.png");
    assert_eq!(png.content_type, "image/png");
    assert_eq!(png.size, 100);
    assert_eq!(png.content, None, "over the limit: metadata only");
    let all = parse(&raw, 1 << 20).unwrap();
    assert_eq!(
        all.attachments[1].content.as_deref().map(<[u8]>::len),
        Some(100)
    );
    let none = parse(&raw, 0).unwrap();
    assert!(none.attachments.iter().all(|a| a.content.is_none()));
}

#[test]
fn non_utf8_charsets_are_decoded() {
    let ru = parsed("koi8r.eml");
    assert_eq!(ru.subject, "Не работает почта");
    assert_eq!(ru.body, "Привет! Не работает почта на втором этаже.");
    let jp = parsed("iso2022jp.eml");
    assert_eq!(jp.subject, "印刷できません");
    assert_eq!(jp.body, "プリンターが動きません。");
}

#[test]
fn a_mail_without_message_id_gets_a_stable_id_from_its_bytes() {
    let raw = fixture("no-message-id.eml");
    let a = parse(&raw, 0).unwrap();
    let b = parse(&raw, 0).unwrap();
    assert!(a.synthetic_id);
    assert_eq!(a.message_id, b.message_id);
    assert!(a.message_id.starts_with("sha256-"), "{}", a.message_id);
    let mut other = raw.clone();
    other.extend_from_slice(b"PS: thanks\n");
    assert_ne!(parse(&other, 0).unwrap().message_id, a.message_id);
    assert_eq!(a.body, "Please reset my password for the HR portal.");
}

#[test]
fn garbage_is_unreadable() {
    assert!(parse(&fixture("garbage.bin"), 0).is_err());
    assert!(parse(b"", 0).is_err());
    assert_eq!(
        parse(b"just some text\nwithout any header\n", 0).unwrap_err(),
        Unreadable::NoMessage
    );
    assert_eq!(
        parse(b"X-Spam-Score: 5\nContent-Type: text/plain\n\nbody\n", 0).unwrap_err(),
        Unreadable::NoMailHeaders
    );
}

#[test]
fn a_bounce_says_what_it_returned() {
    let m = parsed("bounce.eml");
    assert!(m.is_bounce());
    let r = m.returned.as_ref().unwrap();
    assert_eq!(r.message_id.as_deref(), Some("itsmd-out-1@example.com"));
    assert_eq!(r.subject, "Re: [REQ-000001] Password reset please");
    assert_eq!(r.references, ["reply-src@example.com"]);
    assert!(m.body.contains("550 5.1.1 User unknown"), "{}", m.body);
}

#[test]
fn replies_carry_their_thread() {
    let raw = b"From: a@example.com\nSubject: Re: x\nMessage-ID: <r2@x>\nIn-Reply-To: <r1@x>\nReferences: <r0@x> <r1@x>\n\nok\n";
    let m = parse(raw, 0).unwrap();
    assert_eq!(m.in_reply_to, ["r1@x"]);
    assert_eq!(m.references, ["r0@x", "r1@x"]);
    assert!(m.is_reply());
    let auto = parsed("autoreply.eml");
    assert_eq!(auto.noise().map(|n| n.label()), Some("auto_submitted"));
}

#[test]
fn a_panic_in_the_mail_parser_makes_the_message_unreadable() {
    // Found by fuzzing (fuzz/regressions/mail/): mail-parser 0.11.9 trips a debug_assert! on
    // a message/rfc822 part in a broken multipart. It must not take the reader down.
    let raw = b"ur\nContent-Type: multipart/r;boundary=rep\"\n\n--rep\nContent- Type:message/rfc822\n\nre\nContent-Type: message/rfc822\n\n\n--rep--\n";
    let result = parse(raw, 0);
    if cfg!(debug_assertions) {
        assert_eq!(result, Err(Unreadable::ParserFailed));
    }
}

#[test]
fn an_attached_message_without_subject_is_an_unnamed_attachment() {
    // Found by fuzzing (fuzz/regressions/mail/attachment-without-name): an attached message
    // whose Subject decodes to nothing gave an attachment with an empty name.
    let raw = b"From: a@example.com\nSubject: s\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: message/rfc822\n\nFrom: c@example.com\nSubject: =?ISO-2022-JP?B?GyRCMH?=\n\ninner\n--b--\n";
    let m = parse(raw, 1 << 20).unwrap();
    assert_eq!(m.attachments.len(), 1, "{:?}", m.attachments);
    assert_eq!(m.attachments[0].name, "unnamed");
    assert_eq!(m.attachments[0].content_type, "message/rfc822");
}

#[test]
fn html_blocks_lists_and_cells_keep_their_boundaries() {
    let raw = b"From: a@example.com\r\nTo: desk@example.com\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>One</p><p>Two</p><DIV>Three</DIV><ul><li>a</li><li>b</li></ul>Line<br>break<h1>Head</h1><table><tr><td>c1</td><td>c2</td></tr><tr><td>d1</td></tr></table><div><div>nested</div></div>end</body></html>\r\n";
    let m = parse(raw, 1 << 20).unwrap();
    assert_eq!(
        m.body,
        "One\nTwo\nThree\n- a\n- b\nLine\nbreak\nHead\nc1 c2\nd1\nnested\nend"
    );
}

#[test]
fn undeclared_8bit_latin1_is_read_not_replaced() {
    let mut raw = b"From: a@example.com\r\nTo: desk@example.com\r\nSubject: x\r\n\r\n".to_vec();
    raw.extend_from_slice(b"Gr\xfc\xdfe aus K\xf6ln, 5 \x80\r\n");
    assert_eq!(parse(&raw, 1 << 20).unwrap().body, "Grüße aus Köln, 5 €");
    // Declared UTF-8 stays as the sender said, and valid UTF-8 without a charset is UTF-8.
    let utf8 = "From: a@example.com\r\nSubject: x\r\n\r\nGrüße\r\n";
    assert_eq!(parse(utf8.as_bytes(), 1 << 20).unwrap().body, "Grüße");
}
