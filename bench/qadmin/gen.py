#!/usr/bin/python3
"""Fill QMAILHOME/queue with N preprocessed messages (mess, info, remote), as qmail-send
leaves deferred remote mail: sender userK@example.org (K = i % 10), one remote recipient."""
import os, sys, time
home, n = sys.argv[1], int(sys.argv[2])
q = os.path.join(home, 'queue')
now = time.time()
for i in range(n):
    mid = 1000000 + i
    s = mid % 23
    sender = 'user%d@example.org' % (i % 10)
    rcpt = 'rcpt%d@remote.test' % i
    body = ('Received: (qmail %d invoked by uid 0); 26 Nov 2026 15:00:00 -0000\n'
            'From: %s\nTo: %s\nSubject: bench message %d\nMessage-ID: <%d@example.org>\n\n'
            'hello\n' % (i, sender, rcpt, i, i))
    with open('%s/mess/%d/%d' % (q, s, mid), 'w') as f:
        f.write(body)
    with open('%s/info/%d/%d' % (q, s, mid), 'wb') as f:
        f.write(b'F' + sender.encode() + b'\0')
    with open('%s/remote/%d/%d' % (q, s, mid), 'wb') as f:
        f.write(b'T' + rcpt.encode() + b'\0')
    t = now - 3600 + i * 0.001
    os.utime('%s/info/%d/%d' % (q, s, mid), (t, t))
    os.utime('%s/remote/%d/%d' % (q, s, mid), (now + 3600, now + 3600))
