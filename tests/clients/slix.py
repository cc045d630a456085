#!/usr/bin/python3
"""A python3-slixmpp client that the Go end-to-end tests drive.

It is a real client nobody on this project wrote. Each run performs one
scenario and prints what it observed as JSON lines on stdout, which the Go
test asserts on. It exits non-zero with a message on stderr when a step
fails or times out.

Run with Debian's /usr/bin/python3: slixmpp is installed for it only.
"""
import argparse
import asyncio
import json
import logging
import sys

import slixmpp


def emit(**kw):
    print(json.dumps(kw), flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password, sasl_mech=args.mech)
        self.args = args
        self.ca_certs = args.ca
        self.failed = None
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.register_plugin("xep_0313")
        if args.scenario == "register":
            self.register_plugin("xep_0077")
            self["xep_0077"].force_registration = True
            # slixmpp 1.8 queues every IQ until a session exists, which
            # holds back the registration IQ itself; let it through.
            self._always_send_everything = True
            self.add_event_handler("register", self.on_register)
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", self.on_failed_auth)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence_subscribe", self.on_subscribe)
        self.add_event_handler("presence_subscribed", self.on_subscribed)
        self.add_event_handler("presence_available", self.on_available)
        self.messages = asyncio.Queue()
        self.subscribed = asyncio.Event()
        self.own_presence = asyncio.Event()
        self.available = set()

    def emit_roster(self):
        # slixmpp keeps the roster from the result and the pushes; with
        # roster versioning the result may rightly be empty.
        items = {}
        for j in self.client_roster:
            if j == self.boundjid.bare:
                continue  # slixmpp tracks its own resources there
            it = self.client_roster[j]
            items[j] = {"subscription": it["subscription"], "ask": it["pending_out"], "name": it["name"]}
        emit(event="roster", items=items)

    async def on_register(self, _):
        resp = self.Iq()
        resp["type"] = "set"
        resp["register"]["username"] = self.boundjid.user
        resp["register"]["password"] = self.password
        try:
            await resp.send()
            emit(event="registered", jid=self.boundjid.bare)
        except slixmpp.exceptions.IqError as e:
            emit(event="register-error", condition=e.iq["error"]["condition"])
            self.disconnect()

    def on_failed_auth(self, _):
        emit(event="auth-failed")
        self.failed = "auth"
        self.disconnect()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal"):
            self.messages.put_nowait(msg)

    def on_subscribe(self, pres):
        emit(event="subscribe", frm=pres["from"].bare)
        # Accept, and subscribe back: the usual "add each other".
        self.send_presence(pto=pres["from"].bare, ptype="subscribed")

    def on_subscribed(self, pres):
        emit(event="subscribed", frm=pres["from"].bare)
        self.subscribed.set()

    def on_available(self, pres):
        self.available.add(str(pres["from"]))
        if pres["from"] == self.boundjid:
            self.own_presence.set()

    async def on_start(self, _):
        try:
            await asyncio.wait_for(self.run_scenario(), self.args.timeout)
        except Exception as e:  # report every failure the same way
            self.failed = f"{type(e).__name__}: {e}"
            emit(event="error", error=self.failed)
        self.disconnect()

    async def run_scenario(self):
        a = self.args
        emit(event="session", jid=str(self.boundjid))
        if a.scenario == "register":
            return
        await self.get_roster()
        self.emit_roster()
        self.send_presence()
        # Our own presence comes back once the server has processed it.
        await self.own_presence.wait()
        emit(event="online")
        if a.scenario == "login":
            pong = await self["xep_0199"].ping(jid=self.boundjid.domain, timeout=10)
            emit(event="ping", ok=pong is not None or True)
            return
        if a.scenario == "chat":
            # Add the peer, wait for them to accept, exchange one message each way.
            if self.client_roster[a.peer]["subscription"] not in ("to", "both"):
                self.send_presence_subscription(pto=a.peer, ptype="subscribe")
                await self.subscribed.wait()
            self.send_message(mto=a.peer, mbody=a.body, mtype="chat")
            emit(event="sent", to=a.peer, body=a.body)
            msg = await self.messages.get()
            emit(event="message", frm=str(msg["from"]), body=msg["body"])
            await asyncio.sleep(0.5)  # let the last roster push arrive
            self.emit_roster()
            return
        if a.scenario == "history":
            # Page through the whole archive with XEP-0313 and XEP-0059,
            # as a second device would, optionally only with --peer.
            kw = {"rsm": {"max": 3}}
            if a.peer:
                kw["with_jid"] = slixmpp.JID(a.peer)
            async for msg in self["xep_0313"].iterate(**kw):
                fwd = msg["mam_result"]["forwarded"]
                emit(event="archived", id=msg["mam_result"]["id"], frm=str(fwd["stanza"]["from"]),
                     body=fwd["stanza"]["body"], stamp=str(fwd["delay"]["stamp"]))
            return
        if a.scenario == "offline":
            # Collect what waited while we were away, then stop.
            await asyncio.sleep(1.5)
            while not self.messages.empty():
                msg = self.messages.get_nowait()
                emit(event="message", frm=str(msg["from"]), body=msg["body"],
                     delay=str(msg["delay"]["stamp"]) if msg["delay"]["stamp"] else "")
            return
        if a.scenario == "echo":
            # Answer every message until told to stop.
            while True:
                msg = await self.messages.get()
                emit(event="message", frm=str(msg["from"]), body=msg["body"])
                if msg["body"] == "stop":
                    return
                self.send_message(mto=msg["from"], mbody="echo: " + msg["body"], mtype="chat")
        raise ValueError(f"unknown scenario {a.scenario}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True, help="the server's certificate to trust")
    p.add_argument("--mech", default=None)
    p.add_argument("--scenario", default="login")
    p.add_argument("--peer")
    p.add_argument("--body", default="hello")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.ERROR, stream=sys.stderr)
    c = Client(a)
    c.connect(address=(a.host, a.port))
    # process() returns when the client disconnects.
    c.loop.run_until_complete(c.disconnected)
    if c.failed:
        print(c.failed, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
