//! Decoding of `application/x-www-form-urlencoded` components: `+` is a space, then `%XX`
//! escapes. One decoder for the hot path's query parameters and the object keys of S3 event
//! records, which are encoded the same way.

use std::borrow::Cow;

/// `s` decoded, borrowed when it has nothing to decode; `None` when the decoded bytes are not
/// UTF-8. As `percent_decode` after replacing `+`, in one pass: a `%` not followed by two hex
/// digits stays as it is, and `%2B` is a `+`, not a space.
#[must_use]
pub fn decode_component(s: &str) -> Option<Cow<'_, str>> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| Some((hex_value(*bytes.get(i + 1)?)?, hex_value(*bytes.get(i + 2)?)?)))
            .flatten();
        match (b, escaped) {
            (_, Some((hi, lo))) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(s: &str) -> Option<String> {
        decode_component(s).map(Cow::into_owned)
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(decode_component("abc-._~/"), Some(Cow::Borrowed("abc-._~/"))));
    }

    #[test]
    fn plus_is_a_space_and_escapes_are_bytes() {
        assert_eq!(decoded("a+b%20c%2Bd%2fe").as_deref(), Some("a b c+d/e"));
        assert_eq!(decoded("%C3%A9t%C3%A9").as_deref(), Some("été"));
    }

    #[test]
    fn a_percent_without_two_hex_digits_stays() {
        assert_eq!(decoded("100%").as_deref(), Some("100%"));
        assert_eq!(decoded("%4").as_deref(), Some("%4"));
        assert_eq!(decoded("%zz%41").as_deref(), Some("%zzA"));
    }

    #[test]
    fn decoded_bytes_that_are_not_utf8_are_refused() {
        assert_eq!(decoded("%FF"), None);
        assert_eq!(decoded("%C3"), None);
    }

    #[test]
    fn agrees_with_percent_decoding_after_replacing_plus() {
        for s in ["", "+", "%2B+", "a%%41", "%%%", "x%2", "%e2%82%ac+%20", "%00"] {
            let reference = percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(Cow::into_owned);
            assert_eq!(decoded(s), reference, "{s:?}");
        }
    }
}
