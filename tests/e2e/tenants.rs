//! Tenants on one routing listener: each recipient goes to the tenant owning its domain,
//! each tenant's chain sees only its recipients, and a hostile tenant's plugin costs only
//! its own recipients.

use crate::metrics::{endpoint, scrape};
use crate::raw::RawClient;
use crate::server::{Server, plugin_path};

fn config(acme_chain: &str) -> String {
    format!(
        "metrics = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nroute_by_domain = true\n\
         [[tenant]]\nname = \"acme\"\ndomains = [\"acme.example\"]\nplugins = [\"{acme_chain}\"]\n\
         [[tenant]]\nname = \"beta\"\ndomains = [\"Beta.example\"]\nplugins = [\"beta-printer\"]\n\
         [plugin.acme-printer]\nsource = \"debug-printer\"\n[plugin.acme-printer.settings]\nenvelope = true\n\
         [plugin.beta-printer]\nsource = \"debug-printer\"\n[plugin.beta-printer.settings]\nenvelope = true\n\
         [plugin.hostile]\nsource = \"{}\"\n[plugin.hostile.settings]\nmode = \"trap\"\n",
        plugin_path("misbehave")
    )
}

fn start(acme_chain: &str) -> Server {
    Server::from_config(&config(acme_chain))
}

fn send(server: &Server, rcpts: &[&str]) -> String {
    let mut client = RawClient::ehlo(server.addr);
    client.expect("MAIL FROM:<sender@example.org>", "250");
    for rcpt in rcpts {
        // Each with its DSN ORCPT, which names it: a tenant must not see another's.
        client.expect(&format!("RCPT TO:<{rcpt}> ORCPT=rfc822;{rcpt}"), "250");
    }
    client.expect("DATA", "354");
    client.finish_message("Subject: shared\r\n\r\nfor two tenants\r\n")
}

#[test]
fn recipients_are_routed_by_domain_and_each_tenant_sees_only_its_own() {
    let mut server = start("acme-printer");
    let reply = send(&server, &["a@acme.example", "b@beta.example", "c@ACME.example"]);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let printed = server.wait_for_messages(2);
    let messages: Vec<&str> = printed.split("---------- MESSAGE FOLLOWS ----------").skip(1).collect();
    assert_eq!(messages.len(), 2, "{printed}");
    let acme = messages.iter().find(|m| m.contains("acme.example")).unwrap();
    let beta = messages.iter().find(|m| m.contains("beta.example")).unwrap();
    assert!(
        acme.contains("rcpt tos: ['a@acme.example', 'c@ACME.example']\n"),
        "{acme}"
    );
    assert!(
        acme.contains("rcpt options: ['ORCPT=rfc822;a@acme.example', 'ORCPT=rfc822;c@ACME.example']\n"),
        "{acme}"
    );
    assert!(!acme.contains("beta.example"), "{acme}");
    assert!(beta.contains("rcpt tos: ['b@beta.example']\n"), "{beta}");
    assert!(!beta.contains("acme.example"), "{beta}");
    // A domain no tenant owns is refused at RCPT.
    let mut client = RawClient::ehlo(server.addr);
    client.expect("MAIL FROM:<sender@example.org>", "250");
    client.expect("RCPT TO:<x@elsewhere.example>", "550 5.1.2");
}

#[test]
fn a_hostile_tenant_costs_only_its_own_recipients() {
    let mut server = start("hostile");
    // Only beta's recipients: delivered.
    assert!(send(&server, &["b@beta.example"]).starts_with("250 2.0.0"));
    // Only acme's: its plugin traps, the client gets a tempfail, nothing is lost.
    assert!(send(&server, &["a@acme.example"]).starts_with("451 4.3.0"));
    // Both: the temporary failure wins, so the client retries; beta has its copy already.
    assert!(send(&server, &["a@acme.example", "b@beta.example"]).starts_with("451 4.3.0"));
    let printed = server.wait_for_messages(2);
    assert_eq!(printed.matches("rcpt tos: ['b@beta.example']").count(), 2, "{printed}");
    assert!(!printed.contains("acme.example"), "{printed}");
    // Beta is still served.
    assert!(send(&server, &["b2@beta.example"]).starts_with("250 2.0.0"));
    // The failures are counted on the tenant whose plugin failed, not on the listener's.
    let text = scrape(&endpoint(&mut server));
    // A listener without a `tenant` is counted under its configured address.
    let listener = "127.0.0.1:0";
    for expected in [
        "wasmtpd_plugin_errors_total{tenant=\"acme\",kind=\"trap\"} 2".to_owned(),
        "wasmtpd_plugin_errors_total{tenant=\"beta\",kind=\"trap\"} 0".to_owned(),
        format!("wasmtpd_plugin_errors_total{{tenant=\"{listener}\",kind=\"trap\"}} 0"),
        "wasmtpd_messages_total{tenant=\"acme\",outcome=\"tempfailed\"} 2".to_owned(),
        "wasmtpd_messages_total{tenant=\"beta\",outcome=\"accepted\"} 3".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == expected), "no {expected:?} in:\n{text}");
    }
}
