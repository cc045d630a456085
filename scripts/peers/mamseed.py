#!/usr/bin/env python3
"""mamseed.py — one user's archive of N messages, in each server's import form.

The MAM run of bench-peers.sh measures queries on an archive of 1 M
messages. Filling that through the protocol takes from 17 minutes
(verlauf) to weeks (ejabberd's mnesia archive), so each server is seeded
through its own import path first, then the run adds a fill through the
protocol on top and checks that the archive grew by what it delivered.

    mamseed.py FORMAT COUNT USER DOMAIN PARTNERS PASSWORD OUT

FORMAT is one of
  xep0227  a XEP-0227 file for `verlauf import` (account and archive)
  prosody  tab-separated lines for mod_bench_mam_seed (Prosody's archive)
  pgsql    PostgreSQL COPY text for ejabberd's SQL `archive` table

The messages are the same in every form: USER chats with PARTNERS
partners (USER's prefix numbered 1..PARTNERS) in turn, alternately sent
and received, one message every 31 seconds, so that the archive spans
about a year and ends an hour before now (the protocol fill comes after).
"""

import sys
import time
from xml.sax.saxutils import escape, quoteattr

STEP_US = 31_000_000
BODY = "seeded message {i} of {n}: the quick brown fox jumps over the lazy dog"


def messages(n, user, domain, partners):
    """Yields (i, outgoing, owner bare JID, partner bare JID, microseconds, body)."""
    prefix = user.rstrip("0123456789")
    me = f"{user}@{domain}"
    end = (int(time.time()) - 3600) * 1_000_000
    for i in range(n):
        partner = f"{prefix}{i % partners + 1}@{domain}"
        outgoing = (i // partners) % 2 == 0
        yield i, outgoing, me, partner, end - (n - i) * STEP_US, BODY.format(i=i, n=n)


def stanza(i, outgoing, me, partner, body):
    frm, to = (me + "/load", partner) if outgoing else (partner + "/load", me)
    return (f"<message xmlns='jabber:client' from={quoteattr(frm)} to={quoteattr(to)}"
            f" type='chat' id='seed{i}'><body>{escape(body)}</body></message>")


def stamp(us):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1_000_000)) + f".{us % 1_000_000:06d}Z"


def xep0227(out, n, user, domain, partners, password):
    out.write("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n")
    out.write(f"<host jid={quoteattr(domain)}>\n<user name={quoteattr(user)} password={quoteattr(password)}>\n")
    out.write("<archive xmlns='urn:xmpp:pie:0#mam'>\n")
    for i, outgoing, me, partner, us, body in messages(n, user, domain, partners):
        out.write("<result xmlns='urn:xmpp:mam:2'><forwarded xmlns='urn:xmpp:forward:0'>"
                  f"<delay xmlns='urn:xmpp:delay' stamp='{stamp(us)}'/>"
                  f"{stanza(i, outgoing, me, partner, body)}</forwarded></result>\n")
    out.write("</archive>\n</user>\n</host>\n</server-data>\n")


def prosody(out, n, user, domain, partners, _password):
    # user, partner's bare JID, out|in, seconds since the epoch, body
    for i, outgoing, _me, partner, us, body in messages(n, user, domain, partners):
        out.write(f"{user}\t{partner}\t{'out' if outgoing else 'in'}\t{us / 1e6:.6f}\tseed{i}\t{body}\n")


def copy_text(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def pgsql(out, n, user, domain, partners, _password):
    # ejabberd's row: username, timestamp (µs), peer, bare_peer, xml, txt,
    # kind, nick — as mod_mam_sql writes it for a one-to-one chat.
    for i, outgoing, me, partner, us, body in messages(n, user, domain, partners):
        peer = partner if outgoing else partner + "/load"
        xml = stanza(i, outgoing, me, partner, body)
        row = [user, str(us), peer, partner, xml, body, "chat", ""]
        out.write("\t".join(copy_text(c) for c in row) + "\n")


FORMATS = {"xep0227": xep0227, "prosody": prosody, "pgsql": pgsql}


def main(argv):
    if len(argv) != 8 or argv[1] not in FORMATS:
        sys.exit(__doc__.split("\n\n")[2])
    fmt, n, user, domain, partners, password, path = argv[1:]
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as out:
        FORMATS[fmt](out, int(n), user, domain, int(partners), password)


if __name__ == "__main__":
    main(sys.argv)
