//! Delivery Status Notification parameters (RFC 3461): `RET` and `ENVID` on MAIL,
//! `NOTIFY` and `ORCPT` on RCPT. The server checks their syntax and hands them on; what
//! they ask for (a report) is the business of whoever delivers the message.

/// RFC 3461 4.4: an `ENVID` is at most 100 characters.
const MAX_ENVID: usize = 100;
/// RFC 3461 4.2: an `ORCPT` is at most 500 characters.
const MAX_ORCPT: usize = 500;

/// RFC 3461 4.3: `RET=FULL` or `RET=HDRS`.
pub fn is_ret(value: &str) -> bool {
    value.eq_ignore_ascii_case("FULL") || value.eq_ignore_ascii_case("HDRS")
}

/// RFC 3461 4.4: an xtext of at most 100 characters.
pub fn is_envid(value: &str) -> bool {
    value.len() <= MAX_ENVID && is_xtext(value)
}

/// RFC 3461 4.1: `NEVER`, or a comma-separated list of `SUCCESS`, `FAILURE` and `DELAY`,
/// each at most once.
pub fn is_notify(value: &str) -> bool {
    if value.eq_ignore_ascii_case("NEVER") {
        return true;
    }
    let mut seen = [false; 3];
    value.split(',').all(|keyword| {
        let index = ["SUCCESS", "FAILURE", "DELAY"]
            .iter()
            .position(|k| keyword.eq_ignore_ascii_case(k));
        match index {
            Some(i) if !seen[i] => {
                seen[i] = true;
                true
            }
            _ => false,
        }
    })
}

/// RFC 3461 4.2: `addr-type ";" xtext`, the type an atom (`rfc822`, `utf-8`), at most 500
/// characters in all.
pub fn is_orcpt(value: &str) -> bool {
    let Some((addr_type, address)) = value.split_once(';') else {
        return false;
    };
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    value.len() <= MAX_ORCPT
        && !addr_type.is_empty()
        && addr_type.bytes().all(atext)
        && !address.is_empty()
        && is_xtext(address)
}

/// RFC 3461 4: `xtext = *( xchar / hexchar )`, where an xchar is `!` to `~` but `+` and
/// `=`, and a hexchar is `+` and two hex digits (upper-case in the RFC; lower-case ones,
/// which some clients send, are taken too rather than refusing the recipient for good).
pub fn is_xtext(value: &str) -> bool {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = |b: Option<&u8>| b.is_some_and(u8::is_ascii_hexdigit);
                if !(hex(bytes.get(i + 1)) && hex(bytes.get(i + 2))) {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            b'!'..=b'~' => i += 1,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ret_is_full_or_hdrs() {
        for good in ["FULL", "hdrs", "Full"] {
            assert!(is_ret(good), "{good}");
        }
        for bad in ["", "BODY", "FULL,HDRS"] {
            assert!(!is_ret(bad), "{bad}");
        }
    }

    #[test]
    fn notify_is_never_alone_or_a_list_without_repeats() {
        for good in ["NEVER", "SUCCESS", "success,failure", "DELAY,FAILURE,SUCCESS"] {
            assert!(is_notify(good), "{good}");
        }
        for bad in [
            "",
            "NEVER,SUCCESS",
            "SUCCESS,SUCCESS",
            "SUCCESS,",
            "ALWAYS",
            "SUCCESS FAILURE",
        ] {
            assert!(!is_notify(bad), "{bad}");
        }
    }

    #[test]
    fn xtext_encodes_plus_equals_and_what_is_not_visible() {
        for good in ["", "abc", "a+2Bb", "a+2bb", "QQ314159", "x+3Dy", "!~"] {
            assert!(is_xtext(good), "{good}");
        }
        for bad in ["a=b", "a+2g", "a+", "a+4", "a b", "é", "a\tb"] {
            assert!(!is_xtext(bad), "{bad}");
        }
    }

    #[test]
    fn envid_is_short_xtext_and_orcpt_is_typed_xtext() {
        assert!(is_envid("QQ314159"));
        assert!(is_envid(&"x".repeat(100)));
        assert!(!is_envid(&"x".repeat(101)));
        assert!(!is_envid("a=b"));
        for good in [
            "rfc822;a@example.org",
            "RFC822;Bob+2Bx@example.org",
            "utf-8;a@example.org",
        ] {
            assert!(is_orcpt(good), "{good}");
        }
        let long = format!("rfc822;{}", "x".repeat(494));
        for bad in [
            "a@example.org",
            ";a@example.org",
            "rfc822;",
            "rfc 822;a@b",
            "rfc822;a=b@c",
            long.as_str(),
        ] {
            assert!(!is_orcpt(bad), "{bad}");
        }
        assert!(is_orcpt(&format!("rfc822;{}", "x".repeat(493))));
    }
}
