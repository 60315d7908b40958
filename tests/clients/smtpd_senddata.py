"""The seed's client (PyMOTW smtpd_senddata.py), with the port as an argument."""

import email.utils
import smtplib
import sys
from email.mime.text import MIMEText

port = int(sys.argv[1])

# Create the message
msg = MIMEText('This is the body of the message.')
msg['To'] = email.utils.formataddr(('Recipient',
                                   'recipient@example.com'))
msg['From'] = email.utils.formataddr(('Author',
                                     'author@example.com'))
msg['Subject'] = 'Simple test message'

server = smtplib.SMTP('127.0.0.1', port)
server.set_debuglevel(True)  # show communication with the server
try:
    server.sendmail('author@example.com',
                    ['recipient@example.com'],
                    msg.as_string())
finally:
    server.quit()
