"""A wasmtpd plugin in Python: refuses messages whose Subject matches the `subject_pattern`
setting (a regular expression), tags those whose Subject matches `tag_pattern` (an
`X-Spam-Flag: YES` field and `[SPAM] ` before the Subject, through the host's
message-edit interface), and logs each sender at MAIL."""

import re
from email.parser import BytesHeaderParser
from email.policy import default
from typing import List, Optional

from wit_world import exports
from wit_world.imports import host, message_edit, types


def pattern(setting: str) -> Optional["re.Pattern[str]"]:
    text = host.get_setting(setting)
    return re.compile(text, re.IGNORECASE) if text else None


class Handler(exports.Handler):
    def process_message(self, peer: types.Peer, mail_from: str, rcpt_tos: List[str], data: bytes,
                        mail_options: List[str], rcpt_options: List[str]) -> Optional[str]:
        subject = BytesHeaderParser(policy=default).parsebytes(data).get("Subject", "")
        refuse = pattern("subject_pattern")
        if refuse and refuse.search(subject):
            host.log(host.Level.INFO, f"refused {mail_from!r}: subject {subject!r} matches")
            return "550 5.7.1 Message refused: its subject is not accepted here"
        tag = pattern("tag_pattern")
        if tag and tag.search(subject):
            message_edit.add_header("X-Spam-Flag", "YES")
            message_edit.change_header("Subject", 1, f"[SPAM] {subject}")
            host.log(host.Level.INFO, f"tagged {mail_from!r}: subject {subject!r}")
        return None


class Stateless(exports.Stateless):
    """Nothing is kept between calls: the host may share this plugin's instances between
    sessions instead of starting CPython for each."""

    def keeps_no_session_state(self) -> bool:
        return True


class MailHook(exports.MailHook):
    def on_mail(self, mail_from: str, options: List[str]) -> Optional[str]:
        host.log(host.Level.INFO, f"sender {mail_from or '<>'}")
        return None
