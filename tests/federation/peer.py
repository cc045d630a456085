#!/usr/bin/python3
"""A slixmpp user on a peer server (Prosody, ejabberd), driven by the Go
federation tests: commands arrive as JSON lines on stdin, everything the
client observes leaves as JSON lines on stdout.

Commands: {"cmd": "subscribe", "to": J}, {"cmd": "message", "to": J,
"body": B, "hint": H} (H, optional, an XEP-0334 hint such as "no-store"),
{"cmd": "ping", "to": J, "id": I}, {"cmd": "quit"}.
Events: session, presence (from, type), message (from, body), bounce
(from, condition, body: a message that came back as an error), pong (id,
ok, error), error.

A subscription request is approved at once and answered with one of our
own, as a user who accepts a contact does.

Run with Debian's /usr/bin/python3: slixmpp is installed for it only.
"""
import argparse
import asyncio
import json
import sys
import xml.etree.ElementTree as ET

import slixmpp


def emit(**kw):
    print(json.dumps(kw), flush=True)


class Peer(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.ca_certs = args.ca
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        # Answer approvals ourselves below.
        self.auto_authorize = None
        self.auto_subscribe = False
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", lambda _: (emit(event="error", error="auth"), self.disconnect()))
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("message_error", self.on_message)
        self.add_event_handler("presence", self.on_presence)

    async def on_start(self, _):
        await self.get_roster()
        self.send_presence()
        emit(event="session", jid=str(self.boundjid))
        asyncio.ensure_future(self.commands())

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            emit(event="message", frm=str(msg["from"]), body=msg["body"])
        elif msg["type"] == "error":
            emit(event="bounce", frm=str(msg["from"]), condition=msg["error"]["condition"], body=msg["body"])

    def on_presence(self, p):
        t = p["type"]
        if t in ("available", "away", "chat", "dnd", "xa"):
            t = "available"
        emit(event="presence", frm=str(p["from"]), type=t)
        if t == "subscribe":
            self.send_presence(pto=p["from"].bare, ptype="subscribed")
            self.send_presence(pto=p["from"].bare, ptype="subscribe")

    async def commands(self):
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            c = json.loads(line)
            if c["cmd"] == "quit":
                break
            if c["cmd"] == "subscribe":
                self.send_presence(pto=c["to"], ptype="subscribe")
            elif c["cmd"] == "message":
                m = self.make_message(mto=c["to"], mbody=c["body"], mtype="chat")
                if c.get("hint"):
                    m.xml.append(ET.Element("{urn:xmpp:hints}" + c["hint"]))
                m.send()
            elif c["cmd"] == "ping":
                asyncio.ensure_future(self.ping(c["to"], c["id"]))
        self.disconnect()

    async def ping(self, to, ident):
        try:
            await self["xep_0199"].send_ping(to, timeout=15)
            emit(event="pong", id=ident, ok=True)
        except slixmpp.exceptions.IqError as e:
            emit(event="pong", id=ident, ok=False, error=e.iq["error"]["condition"])
        except slixmpp.exceptions.IqTimeout:
            emit(event="pong", id=ident, ok=False, error="timeout")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    a = p.parse_args()
    c = Peer(a)
    c.connect(address=(a.host, a.port))
    c.loop.run_until_complete(c.disconnected)


if __name__ == "__main__":
    main()
