#!/usr/bin/env python3
"""Sends one message over TLS with smtplib, as the e2e tests need it, and prints what it
saw: the EHLO keywords before and after TLS, the server's certificate (DER, in hex), and
whether the server ended TLS cleanly after QUIT (its close_notify before the TCP close).

    tls_send.py PORT starttls|implicit
"""

import smtplib
import sys

port, mode = int(sys.argv[1]), sys.argv[2]
if mode == "implicit":
    # The default context of smtplib does not verify: the test certificate is self-signed.
    client = smtplib.SMTP_SSL("127.0.0.1", port, timeout=20)
    client.ehlo("client.test")
else:
    client = smtplib.SMTP("127.0.0.1", port, timeout=20)
    client.ehlo("client.test")
    print("before:", " ".join(sorted(client.esmtp_features)))
    client.starttls()
    client.ehlo("client.test")
print("after:", " ".join(sorted(client.esmtp_features)))
print("cert:", client.sock.getpeercert(binary_form=True).hex())
client.sendmail("sender@example.org", ["rcpt@example.com"], f"Subject: over TLS ({mode})\r\n\r\nsecret\r\n")
code, _ = client.docmd("QUIT")
print("quit:", code)
# SSL shutdown: sends the client's close_notify and waits for the server's, which fails if
# the server closed its socket without one.
try:
    client.sock.unwrap()
    print("tls end: close_notify")
except (OSError, ValueError) as e:
    print("tls end:", type(e).__name__, e)
client.close()
print("sent")
