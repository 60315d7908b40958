//! The `kv` mode: runs the `ops` setting (`;`-separated) against the `bucket` setting's
//! bucket and answers each result, `|`-separated: `set K V`, `setx K V MS`, `get K`,
//! `del K`, `exists K`, `incr K N`, `expire K MS`, `list`, `prefix P`, `fill N` (sets
//! N keys of 100 octets until one fails).

use crate::wasi::keyvalue::{atomics, store};
use crate::wasmtpd::plugin::keyvalue_extras as extras;

pub fn run(bucket_name: &str, ops: &str) -> String {
    let bucket = match store::open(bucket_name) {
        Ok(bucket) => bucket,
        Err(e) => return format!("open: {e:?}"),
    };
    let results: Vec<String> = ops.split(';').map(|op| one(&bucket, op.trim())).collect();
    results.join("|")
}

fn shown<T: std::fmt::Debug>(result: Result<T, store::Error>) -> String {
    match result {
        Ok(value) => format!("{value:?}"),
        Err(e) => format!("err:{e:?}"),
    }
}

fn one(bucket: &store::Bucket, op: &str) -> String {
    let words: Vec<&str> = op.split(' ').collect();
    let number = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok()).unwrap_or(0);
    let word = |i: usize| words.get(i).copied().unwrap_or("");
    match word(0) {
        "set" => shown(bucket.set(word(1), word(2).as_bytes())),
        "setx" => shown(extras::set_with_expiry(bucket, word(1), word(2).as_bytes(), number(3))),
        "get" => shown(
            bucket
                .get(word(1))
                .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned())),
        ),
        "del" => shown(bucket.delete(word(1))),
        "exists" => shown(bucket.exists(word(1))),
        "incr" => shown(atomics::increment(bucket, word(1), number(2))),
        "expire" => shown(extras::expire(bucket, word(1), number(2))),
        "list" => shown(bucket.list_keys(None).map(|r| r.keys)),
        "prefix" => shown(extras::list_keys_with_prefix(bucket, word(1), None).map(|r| r.keys)),
        "fill" => {
            let value = [b'x'; 100];
            for i in 0..number(1) {
                if let Err(e) = bucket.set(&format!("fill{i}"), &value) {
                    return format!("filled {i} then err:{e:?}");
                }
            }
            format!("filled {}", number(1))
        }
        other => format!("unknown op {other:?}"),
    }
}
