//! For tests only: a component with a hook and no `process-message`, which the host must
//! refuse to load.

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package wasmtpd:no-handler;
        world no-handler {
            import wasmtpd:plugin/host@0.1.0;
            export wasmtpd:plugin/rcpt-hook@0.1.0;
        }
    ",
    world: "wasmtpd:no-handler/no-handler",
    generate_all,
});

struct NoHandler;

impl exports::wasmtpd::plugin::rcpt_hook::Guest for NoHandler {
    fn on_rcpt(_rcpt_to: String, _options: Vec<String>) -> Option<String> {
        None
    }
}

export!(NoHandler);
