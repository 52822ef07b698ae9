//! Reading one parameter of a query string or form body (`application/x-www-form-urlencoded`) as
//! `url::form_urlencoded::parse` does, decoding only that parameter's value and copying runs of plain
//! bytes at once. Piano's `data` runs to kilobytes on every webhook: decoding it byte by byte was about
//! a fifth of the proxy handler's CPU (docs/PERFORMANCE.md, Piano proxy CPU).

use std::borrow::Cow;

/// The value of the first `name` parameter of `text`, decoded (`+` is a space, `%XX` a byte, an
/// invalid escape stays as written, invalid UTF-8 becomes U+FFFD), as `form_urlencoded::parse` reads it.
pub fn value(text: &str, name: &str) -> Option<String> {
    text.split('&').filter(|pair| !pair.is_empty()).find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value).into_owned())
    })
}

fn is_special(b: u8) -> bool {
    b == b'%' || b == b'+'
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// One form-encoded component, decoded; borrowed when it holds no `+` or `%`.
pub fn decode(component: &str) -> Cow<'_, str> {
    match decode_bytes(component) {
        Cow::Borrowed(_) => Cow::Borrowed(component),
        Cow::Owned(out) => Cow::Owned(match String::from_utf8(out) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
    }
}

/// Whether every parameter of `text` is UTF-8 once decoded: `decode` (like axum's `Query`) would
/// otherwise turn the bytes that are not into U+FFFD and let a mangled value through.
pub fn is_utf8(text: &str) -> bool {
    text.split('&').all(|pair| std::str::from_utf8(&decode_bytes(pair)).is_ok())
}

/// One component's bytes, decoded; borrowed when it holds no `+` or `%`.
fn decode_bytes(component: &str) -> Cow<'_, [u8]> {
    let bytes = component.as_bytes();
    let Some(first) = bytes.iter().position(|&b| is_special(b)) else {
        return Cow::Borrowed(bytes);
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut i = first;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                // A run of plain bytes, copied at once.
                let run = bytes[i..].iter().position(|&b| is_special(b)).unwrap_or(bytes.len() - i);
                out.extend_from_slice(&bytes[i..i + run]);
                i += run;
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `url::form_urlencoded::parse` answers: the reference.
    fn reference(text: &str, name: &str) -> Option<String> {
        url::form_urlencoded::parse(text.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }

    #[test]
    fn reads_as_form_urlencoded_does() {
        let data = "V3IqZVBH2dQh4uxOMy9BAg%7E%7E%7EmB3lhC3FscKs7p18-N2vtvy6pSDsIyicy77lydm-UGk";
        for text in [
            format!("data={data}"),
            format!("source=piano&data={data}&data=second"),
            "data".into(),
            "data=".into(),
            "&&data=a+b%20c%2B%2b&".into(),
            "dat%61=escaped+key".into(),
            "data=%".into(),
            "data=%4".into(),
            "data=%zz%4g%%41".into(),
            "data=%C3%A9t%C3%A9%E2%9C%93".into(),
            "data=%FF%C3invalid%80".into(),
            "data=a=b=c".into(),
            "x=1;data=2".into(),
            "data=caf\u{e9}+%E6%97%A5".into(),
            "other=1".into(),
            String::new(),
        ] {
            assert_eq!(value(&text, "data"), reference(&text, "data"), "{text}");
        }
        assert_eq!(value(&format!("data={data}"), "data").unwrap(), data.replace("%7E", "~"));
        assert!(matches!(decode("plain-text_0.9~"), Cow::Borrowed(_)));
    }

    #[test]
    fn tells_queries_that_do_not_decode_to_utf8() {
        for text in ["", "a=1&b=caf%C3%A9", "email=x%40example.com&&limit=5", "a=%zz%", "k=caf\u{e9}", "a+b=c+d"] {
            assert!(is_utf8(text), "{text}");
        }
        for text in ["email=%FF%FE", "a=1&status=%C0%AF", "cursor=%ED%A0%80", "%FF=key", "a=%C3"] {
            assert!(!is_utf8(text), "{text}");
        }
    }

    proptest! {
        #[test]
        fn agrees_with_form_urlencoded(text in "[a-d=&+%0-9A-Fa-fé~ ]{0,40}") {
            prop_assert_eq!(value(&text, "a"), reference(&text, "a"));
            prop_assert_eq!(value(&text, "data"), reference(&text, "data"));
        }

        #[test]
        fn agrees_on_any_bytes(bytes in proptest::collection::vec(prop_oneof![Just(b'%'), Just(b'+'), Just(b'='), Just(b'&'), Just(b'a'), any::<u8>()], 0..40)) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert_eq!(value(&text, "a"), reference(&text, "a"));
        }
    }
}
