//! The key-value store for plugins: what `wasi:keyvalue` and `keyvalue-extras` do from a
//! real component, on both backends (the embedded file and a real redis-server), each
//! tenant in its own namespace within its limits, and nothing without the grant.

use crate::raw::RawClient;
use crate::redis_server::Redis;
use crate::server::{Server, free_port, plugin_path, temp_dir};

/// `[store]` for the embedded backend in a fresh directory.
pub fn embedded() -> String {
    format!("[store]\npath = \"{}/store.redb\"\n", temp_dir().display())
}

/// `[store]` for `redis`.
pub fn redis(redis: &Redis) -> String {
    format!("[store]\nredis = \"{}\"\n", redis.url())
}

/// `[store]` for a Redis that nobody runs (a port that was free a moment ago).
pub fn unreachable_redis() -> String {
    format!(
        "[store]\nredis = \"redis://127.0.0.1:{}/0\"\ntimeout_ms = 300\n",
        free_port()
    )
}

/// A listener running `misbehave` in `kv` mode with `ops`, granted the store or not.
fn probe(store: &str, grant: bool, ops: &str) -> Server {
    let config = format!(
        "{store}[plugin.p]\nsource = \"{}\"\nstore = {grant}\n[plugin.p.settings]\nmode = \"kv\"\nops = \"{ops}\"\n",
        plugin_path("misbehave")
    );
    Server::with_config(&config, &["p"])
}

fn results(server: &Server) -> String {
    let reply = RawClient::one_message(server.addr);
    assert!(reply.starts_with("250 2.0.0 kv: "), "{reply}");
    reply["250 2.0.0 kv: ".len()..].to_owned()
}

const OPS: &str = "set a 1;get a;exists a;incr c 5;incr c 2;get c;set p.x 1;set p.y 2;prefix p.;list;\
                   del a;get a;exists a;setx t v 100000;expire t 0;expire gone 10;set w word;incr w 1";

fn expected_results() -> String {
    [
        "()",
        "Some(\"1\")",
        "true",
        "5",
        "7",
        "Some(\"7\")",
        "()",
        "()",
        "[\"p.x\", \"p.y\"]",
        "[\"a\", \"c\", \"p.x\", \"p.y\"]",
        "()",
        "None",
        "false",
        "()",
        "true",
        "false",
        "()",
        "err:Error::Other(\"the stored value is not a number\")",
    ]
    .join("|")
}

#[test]
fn a_granted_plugin_sets_gets_counts_lists_and_deletes_in_the_embedded_store() {
    let server = probe(&embedded(), true, OPS);
    assert_eq!(results(&server), expected_results());
}

#[test]
fn a_granted_plugin_does_the_same_in_redis() {
    let redis = Redis::start();
    let server = probe(&self::redis(&redis), true, OPS);
    assert_eq!(results(&server), expected_results());
    // The values live in Redis, under the plugin's namespace: c, p.x, p.y, t and w.
    assert_eq!(redis.command("HLEN wasmtpd:kv:{plugin:p}:v").as_deref(), Some(":5"));
}

#[test]
fn the_store_is_not_granted_by_default() {
    let server = probe(&embedded(), false, "set a 1");
    assert_eq!(results(&server), "open: Error::AccessDenied");
}

#[test]
fn values_expire_on_both_backends() {
    let redis = Redis::start();
    for store in [embedded(), self::redis(&redis)] {
        let set = probe(&store, true, "setx k v 300;get k");
        assert_eq!(results(&set), "()|Some(\"v\")", "{store}");
        drop(set);
        std::thread::sleep(std::time::Duration::from_millis(400));
        let later = probe(&store, true, "get k;exists k");
        assert_eq!(results(&later), "None|false", "{store}");
    }
}

/// Two tenants on two listeners, each running the probe with `ops_a` / `ops_b`.
fn two_tenants(store: &str, ops_a: &str, ops_b: &str) -> (Server, [std::net::SocketAddr; 2]) {
    let config = format!(
        "{store}\
         [[listener]]\naddress = \"127.0.0.1:0\"\ntenant = \"a\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\ntenant = \"b\"\n\
         [[tenant]]\nname = \"a\"\nplugins = [\"pa\"]\n\
         [[tenant]]\nname = \"b\"\nplugins = [\"pb\"]\n\
         [plugin.pa]\nsource = \"{plugin}\"\nstore = true\n[plugin.pa.settings]\nmode = \"kv\"\nops = \"{ops_a}\"\n\
         [plugin.pb]\nsource = \"{plugin}\"\nstore = true\n[plugin.pb.settings]\nmode = \"kv\"\nops = \"{ops_b}\"\n",
        plugin = plugin_path("misbehave")
    );
    let mut server = Server::from_config(&config);
    let addresses = server.addresses(2);
    (server, [addresses[0], addresses[1]])
}

fn results_at(addr: std::net::SocketAddr) -> String {
    let reply = RawClient::one_message(addr);
    reply.strip_prefix("250 2.0.0 kv: ").unwrap_or(&reply).to_owned()
}

#[test]
fn each_tenant_has_its_own_namespace_and_limits_on_both_backends() {
    let redis = Redis::start();
    for store in [embedded(), self::redis(&redis)] {
        // Tenant a fills its namespace; tenant b neither sees a's keys nor lacks room.
        let limits = "max_keys = 5\n";
        let store_table = format!("{}{limits}", store);
        let (_server, [a, b]) = two_tenants(&store_table, "fill 10;get fill0", "get fill0;fill 5;list");
        let filled = results_at(a);
        assert!(
            filled.starts_with(
                "filled 5 then err:Error::Other(\"the namespace is full: it holds its maximum of 5 keys\")|Some("
            ),
            "{store}: {filled}"
        );
        let other = results_at(b);
        assert!(other.starts_with("None|filled 5|[\"fill0\""), "{store}: {other}");
    }
}

#[test]
fn a_byte_limit_refuses_the_write_that_would_pass_it() {
    let store = format!("{}max_bytes = 1000\n", embedded());
    // Each fill is 100 octets and its key's 7 (`b`, NUL, `fill0`): the tenth passes 1,000.
    let server = probe(&store, true, "fill 20");
    let filled = results(&server);
    assert!(
        filled.starts_with("filled 9 then err:Error::Other(\"the namespace is full: "),
        "{filled}"
    );
}

#[test]
fn values_survive_a_restart_of_the_embedded_store() {
    let store = embedded();
    let mut first = probe(&store, true, "set kept yes");
    assert_eq!(results(&first), "()");
    first.terminate();
    assert!(first.wait_exit().success());
    let second = probe(&store, true, "get kept");
    assert_eq!(results(&second), "Some(\"yes\")");
}

#[test]
fn an_unreachable_redis_fails_the_call_inside_the_plugin_not_the_server() {
    // A port nobody listens on: the operation fails with a clear error, the session goes on.
    let mut server = probe(&unreachable_redis(), true, "get a");
    let failed = results(&server);
    assert!(
        failed.starts_with("err:Error::Other(\"the store is unavailable: "),
        "{failed}"
    );
    server.wait_for_log("store unavailable");
}
