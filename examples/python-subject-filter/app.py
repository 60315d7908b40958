"""A wasmtpd plugin in Python: refuses messages whose Subject matches the `subject_pattern`
setting (a regular expression), and logs each sender at MAIL."""

import re
from email.parser import BytesHeaderParser
from email.policy import default
from typing import List, Optional

from wit_world import exports
from wit_world.imports import host, types


def pattern() -> Optional["re.Pattern[str]"]:
    text = host.get_setting("subject_pattern")
    return re.compile(text, re.IGNORECASE) if text else None


class Handler(exports.Handler):
    def process_message(self, peer: types.Peer, mail_from: str, rcpt_tos: List[str], data: bytes,
                        mail_options: List[str], rcpt_options: List[str]) -> Optional[str]:
        subject = BytesHeaderParser(policy=default).parsebytes(data).get("Subject", "")
        found = pattern()
        if found and found.search(subject):
            host.log(host.Level.INFO, f"refused {mail_from!r}: subject {subject!r} matches")
            return "550 5.7.1 Message refused: its subject is not accepted here"
        return None


class MailHook(exports.MailHook):
    def on_mail(self, mail_from: str, options: List[str]) -> Optional[str]:
        host.log(host.Level.INFO, f"sender {mail_from or '<>'}")
        return None
