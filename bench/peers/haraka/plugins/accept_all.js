// Accepts every recipient and every message: the peer of a wasmtpd plugin in JavaScript
// in bench/plugin_languages.py.
exports.hook_rcpt = function (next) {
    next(OK);
};

exports.hook_queue = function (next) {
    next(OK);
};
