// A wasmtpd plugin in JavaScript: logs each recipient at RCPT, and accepts every message.
import { log } from "wasmtpd:plugin/host@0.1.0";

export const rcptHook = {
  onRcpt(rcptTo, options) {
    log("info", `recipient ${rcptTo}`);
    return undefined;
  },
};

// Nothing is kept between calls: the host may share this plugin's instances between
// sessions instead of starting a JavaScript engine for each.
export const stateless = {
  keepsNoSessionState() {
    return true;
  },
};

export const handler = {
  processMessage(peer, mailFrom, rcptTos, data, mailOptions, rcptOptions) {
    log("info", `message from ${peer.ip} for ${rcptTos.length} recipient(s), ${data.length} octets`);
    return undefined;
  },
};
