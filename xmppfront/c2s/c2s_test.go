package c2s_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	mstream "mellium.im/xmpp/stream"

	"verlauf.im/verlauf/xmppfront/c2s"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stream"
)

func TestLoginMechanisms(t *testing.T) {
	ts := startServer(t, nil)
	for _, m := range []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1Plus, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain} {
		t.Run(m.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			s, err := ts.dial(ctx, "alice", "secret", "", m)
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			defer s.Close()
			if got := s.LocalAddr(); got.Bare().String() != "alice@"+testDomain || got.Resourcepart() == "" {
				t.Fatalf("bound %s, want alice@%s/<server-chosen>", got, testDomain)
			}
			ts.mu.Lock()
			last := ts.authed[len(ts.authed)-1]
			ts.mu.Unlock()
			if last.Mechanism != m.Name || last.Username != "alice" {
				t.Fatalf("OnAuthenticated got %s for %q, want %s for alice", last.Mechanism, last.Username, m.Name)
			}
			if m.Name == "PLAIN" && last.Password != "secret" || m.Name != "PLAIN" && len(last.ClientKey) == 0 {
				t.Fatalf("OnAuthenticated got no secret: %+v", last)
			}
			c := serve(s)
			c.pingServer(t)
		})
	}
	// Every authenticated stream ended once, and OnSessionEnd said so.
	deadline := time.Now().Add(wait)
	for {
		ts.mu.Lock()
		ended, authed := len(ts.ended), len(ts.authed)
		ts.mu.Unlock()
		if ended == authed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnSessionEnd called %d times for %d authenticated streams", ended, authed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failsWith logs in and expects a SASL failure naming cond.
func failsWith(t *testing.T, ts *testServer, user, password, cond string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := ts.dial(ctx, user, password, "", sasl.ScramSha256)
	if err == nil {
		s.Close()
		t.Fatalf("%s logged in with password %q", user, password)
	}
	if !strings.Contains(err.Error(), cond) {
		t.Fatalf("%s with password %q: %v, want %s", user, password, err, cond)
	}
}

func TestWrongPasswordsAreThrottled(t *testing.T) {
	ts := startServer(t, func(c *c2s.Config) {
		c.AuthFailures = 3
		c.AuthFailuresPerAddress = 100
		c.AuthPenalty = time.Hour
	})
	for i := range 10 {
		cond := "not-authorized"
		if i >= 3 {
			cond = "temporary-auth-failure"
		}
		failsWith(t, ts, "alice", fmt.Sprintf("wrong%d", i), cond)
	}
	// The right password does not help a throttled account...
	failsWith(t, ts, "alice", "secret", "temporary-auth-failure")
	// ...and the throttle is per account: bob still gets in.
	ts.login(t, "bob", "").pingServer(t)
}

func TestFailuresPerAddressAreThrottled(t *testing.T) {
	ts := startServer(t, func(c *c2s.Config) {
		c.AuthFailures = 100
		c.AuthFailuresPerAddress = 3
		c.AuthPenalty = time.Hour
	})
	for _, u := range []string{"nobody1", "nobody2", "alice"} {
		failsWith(t, ts, u, "guess", "not-authorized")
	}
	failsWith(t, ts, "bob", "secret", "temporary-auth-failure")
}

func TestBindConflictReplacesOldSession(t *testing.T) {
	ts := startServer(t, nil)
	old, j1 := ts.rawLogin(t, "alice", "phone")
	if j1.String() != "alice@example.test/phone" {
		t.Fatalf("bound %s, want the resource the client chose", j1)
	}
	neu, j2 := ts.rawLogin(t, "alice", "phone")
	if j2.String() != j1.String() {
		t.Fatalf("second session bound %s, want %s", j2, j1)
	}
	if c := old.streamError(t); c != stream.Conflict {
		t.Fatalf("old session got %q, want conflict", c)
	}
	bob := ts.login(t, "bob", "b")
	bob.send(t, "<message xmlns='jabber:client' to='alice@example.test/phone' type='chat' id='m1'><body>hi</body></message>")
	if el := neu.expect(t, "message"); el.Attr("id") != "m1" {
		t.Fatalf("new session got %s, want m1", el)
	}
}

// available sends initial presence with a priority and waits until the
// router has it.
func (ts *testServer) available(t *testing.T, c *client, prio int) {
	t.Helper()
	c.send(t, fmt.Sprintf("<presence xmlns='jabber:client'><priority>%d</priority></presence>", prio))
	waitFor(t, func() bool {
		for _, r := range ts.router.Resources(c.jid.Bare()) {
			if r.JID.Equal(c.jid) && r.Available && r.Priority == prio {
				return true
			}
		}
		return false
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMessages(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.login(t, "alice", "a")
	alice2 := ts.login(t, "alice", "a2")
	bob1 := ts.login(t, "bob", "b1")
	bob2 := ts.login(t, "bob", "b2")
	ts.available(t, alice, 0)
	ts.available(t, alice2, 0)
	ts.available(t, bob1, 5)
	ts.available(t, bob2, 1)

	// To the bare JID: only the highest priority resource. The second
	// message, to bob/b2 directly, is routed after the first (same sender,
	// same partition), so b2 seeing it first proves it did not get m1.
	alice.send(t, "<message xmlns='jabber:client' to='bob@example.test' type='chat' id='m1'><body>one</body></message>")
	alice.send(t, "<message xmlns='jabber:client' to='"+bob2.jid.String()+"' type='chat' id='m2'><body>two</body></message>")
	got := bob1.expectID(t, "m1")
	if got.Attr("from") != alice.jid.String() || got.Child("body", "").Text() != "one" {
		t.Fatalf("bob got %s", got)
	}
	if el := <-bob2.in; el.Attr("id") != "m2" {
		t.Fatalf("bob/b2 got %s first, want m2", el)
	}

	// Between two resources of one user, and the reply by bare JID.
	alice.send(t, "<message xmlns='jabber:client' to='"+alice2.jid.String()+"' type='chat' id='m3'><body>self</body></message>")
	if el := alice2.expectID(t, "m3"); el.Attr("from") != alice.jid.String() {
		t.Fatalf("alice/a2 got %s", el)
	}
	bob2.send(t, "<message xmlns='jabber:client' to='alice@example.test' type='chat' id='m4'><body>back</body></message>")
	alice.expectID(t, "m4")
	alice2.expectID(t, "m4")

	// A user with no session: service-unavailable until offline storage
	// exists.
	alice.send(t, "<message xmlns='jabber:client' to='carol@example.test' type='chat' id='m5'><body>?</body></message>")
	if c := stanzaError(alice.expectID(t, "m5")); c != "service-unavailable" {
		t.Fatalf("message to offline carol: %q, want service-unavailable", c)
	}
}

func TestIQ(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.login(t, "alice", "a")
	bob := ts.login(t, "bob", "b")
	tests := []struct {
		name, raw, wantType, wantCond, wantFrom string
	}{
		{"ping the server", "<iq xmlns='jabber:client' type='get' id='%s' to='example.test'><ping xmlns='urn:xmpp:ping'/></iq>", "result", "", "example.test"},
		{"legacy session", "<iq xmlns='jabber:client' type='set' id='%s' to='example.test'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>", "result", "", "example.test"},
		{"to a full JID, answered by the client", "<iq xmlns='jabber:client' type='get' id='%s' to='" + bob.jid.String() + "'><ping xmlns='urn:xmpp:ping'/></iq>", "result", "", bob.jid.String()},
		{"to a gone full JID", "<iq xmlns='jabber:client' type='get' id='%s' to='bob@example.test/gone'><ping xmlns='urn:xmpp:ping'/></iq>", "error", "service-unavailable", "bob@example.test/gone"},
		{"to an unknown user", "<iq xmlns='jabber:client' type='get' id='%s' to='nobody@example.test'><ping xmlns='urn:xmpp:ping'/></iq>", "error", "service-unavailable", "nobody@example.test"},
		{"unknown payload", "<iq xmlns='jabber:client' type='get' id='%s' to='example.test'><query xmlns='urn:example:unknown'/></iq>", "error", "service-unavailable", "example.test"},
		{"get with two children", "<iq xmlns='jabber:client' type='get' id='%s' to='example.test'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>", "error", "bad-request", "example.test"},
		{"remote domain", "<iq xmlns='jabber:client' type='get' id='%s' to='remote.example'><ping xmlns='urn:xmpp:ping'/></iq>", "error", "remote-server-not-found", "remote.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := randomString()
			alice.send(t, fmt.Sprintf(tt.raw, id))
			el := alice.expectID(t, id)
			if el.Attr("type") != tt.wantType || stanzaError(el) != tt.wantCond || el.Attr("from") != tt.wantFrom {
				t.Fatalf("reply %s, want type %s, condition %q, from %s", el, tt.wantType, tt.wantCond, tt.wantFrom)
			}
		})
	}
	bob.pingServer(t)
}

func TestSpoofedFromEndsStream(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.login(t, "alice", "a")
	bob := ts.login(t, "bob", "b")
	// Its own bare JID is fine.
	alice.send(t, "<message xmlns='jabber:client' from='alice@example.test' to='"+bob.jid.String()+"' id='ok'><body>x</body></message>")
	if el := bob.expectID(t, "ok"); el.Attr("from") != alice.jid.String() {
		t.Fatalf("from not stamped with the full JID: %s", el)
	}
	alice.send(t, "<message xmlns='jabber:client' from='"+bob.jid.String()+"' to='carol@example.test' id='spoof'><body>x</body></message>")
	var se mstream.Error
	if err := alice.ended(t); !errors.As(err, &se) || se.Err != "invalid-from" {
		t.Fatalf("spoofing session ended with %v, want invalid-from", err)
	}
	bob.pingServer(t)
}

func TestDirectTLS(t *testing.T) {
	ts := startServer(t, nil)
	cfg := ts.clientTLS()
	cfg.NextProtos = []string{c2s.ALPN}
	conn, err := tls.Dial("tcp", ts.tlsAdr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != c2s.ALPN {
		t.Fatalf("ALPN %q, want %q", p, c2s.ALPN)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := xmpp.NewClientSession(ctx, jid.MustParse("alice@example.test/direct"), conn,
		xmpp.SASL("", "secret", sasl.ScramSha256Plus), xmpp.BindResource())
	if err != nil {
		t.Fatalf("login over direct TLS: %v", err)
	}
	defer s.Close()
	serve(s).pingServer(t)
}

// A handler that would wait past the shutdown deadline (a MAM query
// waiting on an index that shutdown stops) is aborted when the deadline
// passes, so Shutdown returns.
func TestShutdownAbortsHandlersAtDeadline(t *testing.T) {
	ts := startServer(t, nil)
	entered := make(chan struct{})
	ts.mux.Handle("test:block", "q", router.IQHandlerFunc(func(ctx context.Context, _ router.IQ) (*stream.Element, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	// The client asks, then closes its stream: the session finishes
	// gracefully, which lets the queued query complete first.
	alice, _ := ts.rawLogin(t, "alice", "a")
	alice.write(t, `<iq type='get' id='b1'><q xmlns='test:block'/></iq>`)
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("the blocking handler was not called")
	}
	alice.write(t, `</stream:stream>`)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want the deadline's error", err)
		}
	case <-time.After(wait):
		t.Fatal("Shutdown did not return: a handler held it past its deadline")
	}
}

func TestShutdownClosesEveryStream(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.login(t, "alice", "a")
	bob := ts.login(t, "bob", "b")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range []*client{alice, bob} {
		var se mstream.Error
		if err := c.ended(t); !errors.As(err, &se) || se.Err != "system-shutdown" {
			t.Fatalf("%s ended with %v, want system-shutdown", c.jid, err)
		}
	}
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}
