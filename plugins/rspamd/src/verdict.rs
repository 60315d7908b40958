//! rspamd's answer (`/checkv2`'s JSON) and what it means for the message, pure.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Answer {
    pub action: String,
    #[serde(default)]
    pub score: f64,
    #[serde(default)]
    pub required_score: f64,
    /// The new Subject, for `rewrite subject`.
    pub subject: Option<String>,
    #[serde(default)]
    pub messages: Messages,
}

#[derive(Debug, Default, Deserialize)]
pub struct Messages {
    /// What rspamd wants the client told, e.g. `Gtube pattern`.
    pub smtp_message: Option<String>,
}

/// What to do with the message.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Accept it, with these header fields added (name, value).
    Accept {
        headers: Vec<(String, String)>,
        subject: Option<String>,
    },
    /// Refuse it with this reply.
    Refuse(String),
}

/// A reply text holds no CR, LF or other control characters, and is not too long.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

pub fn verdict(answer: &Answer, honour_greylist: bool) -> Verdict {
    let told = answer.messages.smtp_message.as_deref().map(clean);
    let score = format!("{:.2} / {:.2}", answer.score, answer.required_score);
    let mut headers = vec![
        ("X-Spamd-Score".to_owned(), score),
        ("X-Spamd-Action".to_owned(), answer.action.clone()),
    ];
    match answer.action.as_str() {
        "reject" => Verdict::Refuse(format!(
            "550 5.7.1 {}",
            told.unwrap_or_else(|| "Message rejected as spam".to_owned())
        )),
        "soft reject" => Verdict::Refuse(format!(
            "451 4.7.1 {}",
            told.unwrap_or_else(|| "Try again later".to_owned())
        )),
        "greylist" if honour_greylist => Verdict::Refuse("451 4.7.1 Greylisted, please try again later".to_owned()),
        "add header" => {
            headers.push(("X-Spam".to_owned(), "Yes".to_owned()));
            Verdict::Accept { headers, subject: None }
        }
        "rewrite subject" => Verdict::Accept {
            headers,
            subject: answer.subject.as_deref().map(clean),
        },
        _ => Verdict::Accept { headers, subject: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Answer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn reject_refuses_with_rspamds_message_made_safe() {
        let a = answer(
            r#"{"action":"reject","score":15,"required_score":15,"messages":{"smtp_message":"Gtube\r\npattern"}}"#,
        );
        assert_eq!(verdict(&a, true), Verdict::Refuse("550 5.7.1 Gtubepattern".into()));
        let plain = answer(r#"{"action":"reject"}"#);
        assert_eq!(
            verdict(&plain, true),
            Verdict::Refuse("550 5.7.1 Message rejected as spam".into())
        );
    }

    #[test]
    fn soft_reject_and_greylist_defer() {
        let soft = answer(r#"{"action":"soft reject"}"#);
        assert_eq!(
            verdict(&soft, true),
            Verdict::Refuse("451 4.7.1 Try again later".into())
        );
        let grey = answer(r#"{"action":"greylist","score":5.9,"required_score":15}"#);
        assert!(matches!(verdict(&grey, true), Verdict::Refuse(r) if r.starts_with("451 4.7.1")));
        assert!(matches!(verdict(&grey, false), Verdict::Accept { .. }));
    }

    #[test]
    fn add_header_and_rewrite_subject_accept_with_edits() {
        let add = answer(r#"{"action":"add header","score":6.5,"required_score":15}"#);
        let Verdict::Accept { headers, subject } = verdict(&add, true) else {
            panic!()
        };
        assert!(headers.contains(&("X-Spam".into(), "Yes".into())));
        assert!(headers.contains(&("X-Spamd-Score".into(), "6.50 / 15.00".into())));
        assert_eq!(subject, None);
        let rewrite = answer(r#"{"action":"rewrite subject","subject":"***SPAM*** hi"}"#);
        let Verdict::Accept { subject, .. } = verdict(&rewrite, true) else {
            panic!()
        };
        assert_eq!(subject.as_deref(), Some("***SPAM*** hi"));
    }

    #[test]
    fn no_action_accepts_with_the_score() {
        let none = answer(r#"{"action":"no action","score":0.9,"required_score":15}"#);
        let Verdict::Accept { headers, .. } = verdict(&none, true) else {
            panic!()
        };
        assert_eq!(headers[1], ("X-Spamd-Action".into(), "no action".into()));
    }
}
