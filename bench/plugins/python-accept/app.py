"""The benchmark's Python plugin: accepts every message, as bench/peers/aiosmtpd_accept.py's
handler does. It keeps nothing between calls and says so (`stateless`), so the host
shares its instances between sessions; with the setting `per_session = true` it does
not, and each session starts CPython afresh."""

from typing import List, Optional

from wit_world import exports
from wit_world.imports import host, types


class Handler(exports.Handler):
    def process_message(self, peer: types.Peer, mail_from: str, rcpt_tos: List[str], data: bytes,
                        mail_options: List[str], rcpt_options: List[str]) -> Optional[str]:
        return None


class Stateless(exports.Stateless):
    def keeps_no_session_state(self) -> bool:
        return host.get_setting("per_session") != "true"
