#!/usr/bin/python3
"""A slixmpp client for the interop tests: it logs in to a real server with
a password (SCRAM, over a plain loopback connection), optionally sets
roster items and its vCard, then prints what the server holds as one JSON
object on stdout:

    {"roster": [{"jid", "name", "subscription", "groups"}...],
     "vcard": {"FN": ..., "NICKNAME": ...}}

It exits non-zero with a message on stderr when login or a step fails.
Run with Debian's /usr/bin/python3: slixmpp is installed for it only.
"""
import argparse
import asyncio
import json
import sys

import slixmpp


class Client(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.args = args
        self.result = None
        self.failure = None
        # Loopback without TLS: the throwaway servers have no certificate.
        self.enable_plaintext = True
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0054")
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", self.on_auth_failed)

    def on_auth_failed(self, _):
        self.failure = "authentication failed"
        self.disconnect()

    async def on_start(self, _):
        try:
            for item in self.args.item:
                jid, name, groups = (item.split("|") + ["", ""])[:3]
                await self.update_roster(jid, name=name or None, groups=[g for g in groups.split(",") if g])
            if self.args.fn:
                vcard = self["xep_0054"].make_vcard()
                vcard["FN"] = self.args.fn
                if self.args.nick:
                    vcard["NICKNAME"] = self.args.nick
                await self["xep_0054"].publish_vcard(vcard)
            await self.get_roster()
            roster = []
            for jid in self.client_roster:
                it = self.client_roster[jid]
                roster.append({"jid": jid, "name": it["name"], "subscription": it["subscription"], "groups": sorted(it["groups"])})
            iq = await self["xep_0054"].get_vcard(self.boundjid.bare, local=False, cached=False)
            vc = iq["vcard_temp"]
            nick = vc["NICKNAME"]
            if isinstance(nick, list):  # slixmpp gives a list of nicknames
                nick = ",".join(nick)
            self.result = {"roster": sorted(roster, key=lambda r: r["jid"]), "vcard": {"FN": vc["FN"], "NICKNAME": nick}}
        except Exception as e:  # report, do not hang
            self.failure = "%s: %s" % (type(e).__name__, e)
        self.disconnect()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--item", action="append", default=[], help="jid|name|group,group")
    p.add_argument("--fn")
    p.add_argument("--nick")
    args = p.parse_args()
    c = Client(args)
    c.connect(address=(args.host, args.port), force_starttls=False, disable_starttls=True)
    loop = asyncio.get_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(c.disconnected, 20))
    except asyncio.TimeoutError:
        c.failure = c.failure or "timed out"
    if c.failure or c.result is None:
        print(c.failure or "disconnected before the session started", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(c.result))


if __name__ == "__main__":
    main()
