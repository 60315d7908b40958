// The benchmark's JavaScript plugin: accepts every message, as bench/peers/haraka's
// accept_all plugin does. It keeps nothing between calls and says so (`stateless`), so
// the host shares its instances between sessions; with the setting `per_session = true`
// it does not, and each session starts the JavaScript engine afresh.
import { getSetting } from "wasmtpd:plugin/host@0.1.0";

export const handler = {
  processMessage(peer, mailFrom, rcptTos, data, mailOptions, rcptOptions) {
    return undefined;
  },
};

export const stateless = {
  keepsNoSessionState() {
    return getSetting("per_session") !== "true";
  },
};
