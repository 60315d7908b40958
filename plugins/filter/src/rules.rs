//! The filter's rules as pure functions over its settings' text.

fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|i| !i.is_empty())
}

fn domain_of(address: &str) -> Option<&str> {
    address.rsplit_once('@').map(|(_, d)| d)
}

/// `blocked` lists addresses and `@domain`s; the null sender `""` is never blocked.
pub fn sender_blocked(blocked: &str, sender: &str) -> bool {
    !sender.is_empty()
        && items(blocked).any(|item| match item.strip_prefix('@') {
            Some(domain) => domain_of(sender).is_some_and(|d| d.eq_ignore_ascii_case(domain)),
            None => item.eq_ignore_ascii_case(sender),
        })
}

/// Whether the address's domain is in `domains`. `postmaster` (no domain) always is.
pub fn domain_listed(domains: &str, address: &str) -> bool {
    match domain_of(address) {
        None => true,
        Some(domain) => items(domains).any(|d| d.eq_ignore_ascii_case(domain)),
    }
}

/// Whether the address is in `addresses`: local parts exactly, domains ignoring case.
pub fn address_listed(addresses: &str, address: &str) -> bool {
    domain_of(address).is_none()
        || items(addresses).any(|item| match (item.rsplit_once('@'), address.rsplit_once('@')) {
            (Some((il, id)), Some((al, ad))) => il == al && id.eq_ignore_ascii_case(ad),
            _ => false,
        })
}

/// Whether any `Name:text` rule matches a header of the message (unfolded; names and
/// text compared ignoring case).
pub fn headers_match(rules: &str, message: &[u8]) -> bool {
    first_match(rules, message).is_some()
}

/// The first `Name:text` rule that matches a header of the message, as written.
pub fn first_match<'a>(rules: &'a str, message: &[u8]) -> Option<&'a str> {
    // No rule, nothing to parse: most messages meet empty rule lists.
    items(rules).next()?;
    let headers = headers(message);
    items(rules).find(|rule| {
        rule.split_once(':').is_some_and(|(name, needle)| {
            let (name, needle) = (name.trim().to_ascii_lowercase(), needle.trim().to_lowercase());
            headers
                .iter()
                .any(|(n, v)| *n == name && v.to_lowercase().contains(&needle))
        })
    })
}

/// An IPv4 address's octets reversed, as DNSBLs are queried (`192.0.2.7` → `7.2.0.192`);
/// `None` for anything else (IPv6 lists are left alone).
pub fn reversed_ipv4(ip: &str) -> Option<String> {
    let address: std::net::Ipv4Addr = ip.parse().ok()?;
    let [a, b, c, d] = address.octets();
    Some(format!("{d}.{c}.{b}.{a}"))
}

/// Whether a value read from the message is text as it was sent: no byte that was not
/// UTF-8 (read as U+FFFD), no control character but tab.
pub fn is_plain_text(value: &str) -> bool {
    !value.chars().any(|c| c == '\u{FFFD}' || (c.is_control() && c != '\t'))
}

/// The first header called `name` (any case), unfolded, its value trimmed.
pub fn header_value(message: &[u8], name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    headers(message).into_iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// The header fields, unfolded: lower-case names, values as written (trimmed).
fn headers(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_senders() {
        let list = "spammer@example.org, @bad.example";
        assert!(sender_blocked(list, "Spammer@example.org"));
        assert!(sender_blocked(list, "anyone@BAD.example"));
        assert!(!sender_blocked(list, "friend@example.org"));
        assert!(!sender_blocked(list, ""));
        assert!(!sender_blocked("", "a@b.c"));
    }

    #[test]
    fn local_domains_and_users() {
        assert!(domain_listed("example.com", "a@Example.COM"));
        assert!(!domain_listed("example.com", "a@example.net"));
        assert!(domain_listed("example.com", "postmaster"));
        assert!(address_listed("alice@example.com,bob@example.com", "bob@EXAMPLE.com"));
        assert!(!address_listed("alice@example.com", "Alice@example.com"));
        assert!(!address_listed("alice@example.com", "carol@example.com"));
    }

    #[test]
    fn dnsbl_queries_reverse_ipv4_only() {
        assert_eq!(reversed_ipv4("192.0.2.7").as_deref(), Some("7.2.0.192"));
        assert_eq!(reversed_ipv4("::1"), None);
        assert_eq!(reversed_ipv4("not an address"), None);
    }

    #[test]
    fn header_rules() {
        let message = b"From: a@b.c\r\nSubject: Cheap\r\n  VIAGRA now\r\n\r\nSubject: body is not headers\r\n";
        assert!(headers_match("subject:viagra", message));
        assert!(!headers_match("Subject:body", message));
        assert!(!headers_match("X-Spam:yes", message));
        assert!(headers_match("X-Spam:yes, From:@b.c", message));
        assert_eq!(
            first_match("X-Spam:yes, subject:viagra", message),
            Some("subject:viagra")
        );
        assert_eq!(header_value(message, "SUBJECT").as_deref(), Some("Cheap  VIAGRA now"));
        assert_eq!(header_value(message, "To"), None);
        assert!(is_plain_text("Cheap\tVIAGRA naïve"));
        assert!(!is_plain_text("\u{1b}$B"));
        let latin1 = header_value(b"Subject: caf\xe9\r\n\r\n", "Subject").unwrap();
        assert!(!is_plain_text(&latin1));
    }
}
