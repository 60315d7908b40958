//! SASL for SMTP AUTH (RFC 4954): the PLAIN (RFC 4616) and LOGIN mechanisms, and the
//! base64 of the challenges and responses. The session does the exchange; this decodes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The mechanisms offered, in the EHLO line's order.
pub const MECHANISMS: &str = "PLAIN LOGIN";

/// LOGIN's challenges, base64 of `Username:` and `Password:`, as clients expect them.
pub const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// What the client proved: the identity to act as and its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub identity: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print a password, not even in a test's failure message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("the client cancelled")]
    Cancelled,
    #[error("not base64")]
    NotBase64,
    #[error("malformed PLAIN response")]
    Malformed,
    #[error("authorizing as someone else is not supported")]
    OtherAuthorization,
}

/// A client's response line: `*` cancels, `=` (or nothing) is empty, else base64.
pub fn decode_response(line: &str) -> Result<Vec<u8>, SaslError> {
    match line.trim_end() {
        "*" => Err(SaslError::Cancelled),
        "=" | "" => Ok(Vec::new()),
        text => STANDARD.decode(text).map_err(|_| SaslError::NotBase64),
    }
}

/// PLAIN: `authzid NUL authcid NUL password`. An authorization identity other than the
/// authentication one (acting for someone else) is refused.
pub fn decode_plain(response: &[u8]) -> Result<Credentials, SaslError> {
    let fields: Vec<&[u8]> = response.split(|&b| b == 0).collect();
    let [authorize, identity, password] = fields.as_slice() else {
        return Err(SaslError::Malformed);
    };
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| SaslError::Malformed);
    let (authorize, identity, password) = (text(authorize)?, text(identity)?, text(password)?);
    if identity.is_empty() {
        return Err(SaslError::Malformed);
    }
    if !authorize.is_empty() && authorize != identity {
        return Err(SaslError::OtherAuthorization);
    }
    Ok(Credentials { identity, password })
}

/// A decoded LOGIN response (the user name or the password) as text.
pub fn login_field(response: &[u8]) -> Result<String, SaslError> {
    String::from_utf8(response.to_vec()).map_err(|_| SaslError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &[u8]) -> String {
        STANDARD.encode(text)
    }

    #[test]
    fn plain_responses() {
        let decoded = |text: &[u8]| decode_response(&plain(text)).and_then(|r| decode_plain(&r));
        let alice = Credentials {
            identity: "alice".into(),
            password: "s3cret".into(),
        };
        assert_eq!(decoded(b"\0alice\0s3cret"), Ok(alice.clone()));
        assert_eq!(decoded(b"alice\0alice\0s3cret"), Ok(alice));
        assert_eq!(decoded(b"bob\0alice\0s3cret"), Err(SaslError::OtherAuthorization));
        assert_eq!(decoded(b"\0alice"), Err(SaslError::Malformed));
        assert_eq!(decoded(b"\0\0pw"), Err(SaslError::Malformed));
        assert_eq!(decoded(b"\0a\0b\0c"), Err(SaslError::Malformed));
        assert_eq!(decoded(b"\0\xff\0pw"), Err(SaslError::Malformed));
        assert!(!format!("{:?}", decoded(b"\0alice\0s3cret")).contains("s3cret"));
    }

    #[test]
    fn responses_cancel_are_empty_or_base64() {
        assert_eq!(decode_response("*"), Err(SaslError::Cancelled));
        assert_eq!(decode_response("="), Ok(Vec::new()));
        assert_eq!(decode_response("YWxpY2U="), Ok(b"alice".to_vec()));
        assert_eq!(decode_response("not base64!"), Err(SaslError::NotBase64));
        assert_eq!(STANDARD.decode(LOGIN_USERNAME).unwrap(), b"Username:");
        assert_eq!(STANDARD.decode(LOGIN_PASSWORD).unwrap(), b"Password:");
    }
}
