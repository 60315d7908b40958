#!/usr/bin/env python3
"""Sends one message over TLS with smtplib, as the e2e tests need it, and prints what it
saw: the EHLO keywords before and after TLS, and the server's certificate (DER, in hex).

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
client.quit()
print("sent")
