package e2e

import (
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/tests/xmppclient"
	"verlauf.im/verlauf/xmppfront/stream"
)

func isResult(id string) func(*stream.Element) bool {
	return func(e *stream.Element) bool { return e.Attr("id") == id }
}

func pingServer(t *testing.T, c *xmppclient.Client, domain, id string) {
	t.Helper()
	c.Send(t, "<iq type='get' id='"+id+"' to='"+domain+"'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := c.ExpectID(t, id); r.Attr("type") != "result" {
		t.Fatalf("ping %s: %s", id, r)
	}
}

// Every mechanism the server offers works with a client library nobody
// here wrote, including channel binding over the real TLS connection.
func TestLoginWithEachMechanism(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	alice := addUser(t, s, "alice")
	for _, mech := range []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1Plus, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain} {
		t.Run(mech.Name, func(t *testing.T) {
			c := login(t, s, alice, "", mech)
			if c.JID.Bare().String() != alice || c.JID.Resourcepart() == "" {
				t.Fatalf("bound %s, want a resource of %s", c.JID, alice)
			}
			pingServer(t, c, s.Domain, "p1")
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		_, err := xmppclient.Dial(ctxT(t, 10*time.Second), xmppclient.Options{
			Addr: s.C2S, User: alice, Password: "wrong", Mech: sasl.ScramSha256, TLS: s.TLSConfig(),
		})
		if err == nil {
			t.Fatal("logged in with a wrong password")
		}
	})
}

// Two users add each other, chat, and one has two devices: the roster
// pushes, presence and message routing of RFC 6121 seen from real clients.
func TestRosterPresenceAndMessages(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	phone := login(t, s, alice, "", sasl.ScramSha256)
	pc := login(t, s, alice, "", sasl.ScramSha256)
	b := login(t, s, bob, "", sasl.ScramSha256)
	for i, c := range []*xmppclient.Client{phone, pc, b} {
		id := "r" + string(rune('0'+i))
		c.Send(t, "<iq type='get' id='"+id+"'><query xmlns='jabber:iq:roster'/></iq>")
		if r := c.ExpectID(t, id); r.Attr("type") != "result" {
			t.Fatalf("roster get: %s", r)
		}
		c.Send(t, "<presence/>")
	}

	// The phone adds bob; the PC sees the push.
	phone.Send(t, "<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='"+bob+"' name='Bob'><group>Friends</group></item></query></iq>")
	phone.ExpectID(t, "add")
	push := pc.Expect(t, "roster push", func(e *stream.Element) bool {
		return e.Name.Local == "iq" && e.Attr("type") == "set" && e.Child("query", "jabber:iq:roster") != nil
	})
	item := push.Child("query", "jabber:iq:roster").Child("item", "jabber:iq:roster")
	if item.Attr("jid") != bob || item.Attr("name") != "Bob" || item.Attr("subscription") != "none" {
		t.Fatalf("push: %s", push)
	}

	// The subscription handshake.
	phone.Send(t, "<presence to='"+bob+"' type='subscribe'/>")
	req := b.Expect(t, "subscribe", func(e *stream.Element) bool { return e.Attr("type") == "subscribe" })
	if req.Attr("from") != alice {
		t.Fatalf("subscribe from %q, want the bare JID %s", req.Attr("from"), alice)
	}
	b.Send(t, "<presence to='"+alice+"' type='subscribed'/>")
	pc.Expect(t, "push with subscription to", func(e *stream.Element) bool {
		q := e.Child("query", "jabber:iq:roster")
		return q != nil && q.Child("item", "jabber:iq:roster").Attr("subscription") == "to"
	})
	// Bob's presence reaches alice's devices now that she is subscribed.
	pc.Expect(t, "bob's presence", func(e *stream.Element) bool {
		return e.Name.Local == "presence" && strings.HasPrefix(e.Attr("from"), bob+"/") && e.Attr("type") == ""
	})
	// And back: bob subscribes to alice, who approves.
	b.Send(t, "<presence to='"+alice+"' type='subscribe'/>")
	phone.Expect(t, "subscribe from bob", func(e *stream.Element) bool { return e.Attr("type") == "subscribe" })
	phone.Send(t, "<presence to='"+bob+"' type='subscribed'/>")
	b.Expect(t, "alice's presence", func(e *stream.Element) bool {
		return e.Name.Local == "presence" && strings.HasPrefix(e.Attr("from"), alice+"/") && e.Attr("type") == ""
	})

	// Messages: to a bare JID reach every device of the same priority; to
	// a full JID, that device; between two devices of one user too.
	b.Send(t, "<message to='"+alice+"' type='chat' id='m1'><body>hello alice</body></message>")
	for _, c := range []*xmppclient.Client{phone, pc} {
		m := c.Expect(t, "message", func(e *stream.Element) bool { return e.Name.Local == "message" && e.Attr("id") == "m1" })
		if m.Attr("from") != b.JID.String() || m.Child("body", "").Text() != "hello alice" {
			t.Fatalf("got %s", m)
		}
	}
	phone.Send(t, "<message to='"+pc.JID.String()+"' type='chat' id='m2'><body>note to self</body></message>")
	if m := pc.Expect(t, "own message", isResult("m2")); m.Attr("from") != phone.JID.String() {
		t.Fatalf("got %s", m)
	}
	phone.Send(t, "<message to='"+b.JID.String()+"' type='chat' id='m3'><body>hi bob</body></message>")
	b.Expect(t, "message from alice", isResult("m3"))

	// The server stamps 'from': a client cannot claim another JID.
	pc.Send(t, "<message from='"+bob+"' to='"+bob+"' id='spoof'><body>x</body></message>")
	if err := pc.Ended(t); err == nil || !strings.Contains(err.Error(), "invalid-from") {
		t.Fatalf("spoofed from ended with %v, want invalid-from", err)
	}
	pingServer(t, phone, s.Domain, "still-alive")

	// Removing bob cancels both subscriptions; bob hears about it.
	phone.Send(t, "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='"+bob+"' subscription='remove'/></query></iq>")
	phone.ExpectID(t, "rm")
	b.Expect(t, "unsubscribe", func(e *stream.Element) bool { return e.Attr("type") == "unsubscribe" })
	b.Expect(t, "unsubscribed", func(e *stream.Element) bool { return e.Attr("type") == "unsubscribed" })

	// After a restart the rosters are as the events left them.
	s.Restart()
	b2 := login(t, s, bob, "", sasl.ScramSha256)
	b2.Send(t, "<iq type='get' id='after'><query xmlns='jabber:iq:roster'/></iq>")
	q := b2.ExpectID(t, "after").Child("query", "jabber:iq:roster")
	it := q.Child("item", "jabber:iq:roster")
	if it == nil || it.Attr("jid") != alice || it.Attr("subscription") != "none" {
		t.Fatalf("bob's roster after restart: %s", q)
	}
}

// slixmpp registers in-band, then adds a user who runs another slixmpp
// instance, and they chat.
func TestSlixmppRegisterSubscribeChat(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	ctx := ctxT(t, 60*time.Second)
	carol := "carol@" + s.Domain
	evs, err := slix(t, ctx, s, nil, "--jid", carol, "--scenario", "register")
	if err != nil {
		t.Fatal(err)
	}
	if find(evs, "registered") == nil {
		t.Fatalf("no registration: %v", evs)
	}
	// Registering the same name again is refused with conflict.
	evs, _ = slix(t, ctx, s, nil, "--jid", carol, "--scenario", "register")
	if e := find(evs, "register-error"); e == nil || e["condition"] != "conflict" {
		t.Fatalf("second registration: %v", evs)
	}

	dave := addUser(t, s, "dave")
	echoDone := make(chan error, 1)
	online := make(chan struct{})
	var echoEvents []map[string]any
	go func() {
		var err error
		echoEvents, err = slix(t, ctx, s, func(ev map[string]any) {
			if ev["event"] == "online" {
				close(online)
			}
		}, "--jid", dave, "--scenario", "echo", "--timeout", "40")
		echoDone <- err
	}()
	// Carol's message must find dave online.
	select {
	case <-online:
	case err := <-echoDone:
		t.Fatalf("dave's client ended before it was online: %v", err)
	}
	evs, err = slix(t, ctx, s, nil, "--jid", carol, "--scenario", "chat", "--peer", dave, "--body", "hello dave")
	if err != nil {
		t.Fatal(err)
	}
	msg := find(evs, "message")
	if msg == nil || msg["body"] != "echo: hello dave" || !strings.HasPrefix(msg["frm"].(string), dave+"/") {
		t.Fatalf("carol's events: %v", evs)
	}
	var last map[string]any
	for _, e := range evs {
		if e["event"] == "roster" {
			last = e
		}
	}
	items, _ := last["items"].(map[string]any)
	it, _ := items[dave].(map[string]any)
	if it == nil || (it["subscription"] != "both" && it["subscription"] != "to") {
		t.Fatalf("carol's roster after the handshake: %v", last)
	}
	// Stop dave.
	c := login(t, s, carol, "", sasl.ScramSha256)
	c.Send(t, "<message to='"+dave+"' type='chat'><body>stop</body></message>")
	if err := <-echoDone; err != nil {
		t.Fatal(err)
	}
	if m := find(echoEvents, "message"); m == nil || m["body"] != "hello dave" {
		t.Fatalf("dave's events: %v", echoEvents)
	}
}
