package register

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

type fixture struct {
	svc     *Service
	acc     *accounts.Service
	mux     *router.Mux
	clock   *fakeClock
	removed []string
}

func setup(t *testing.T, cfg Config) *fixture {
	t.Helper()
	st, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	acc, err := accounts.New(accounts.Config{Store: st, Domain: "example.org", Iterations: domain.MinSCRAMIterations})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{acc: acc, mux: router.NewMux(), clock: &fakeClock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	cfg.Domain, cfg.Accounts, cfg.Clock = "example.org", acc, f.clock
	cfg.OnRemoved = func(_ context.Context, full jid.JID) { f.removed = append(f.removed, full.String()) }
	f.svc = New(cfg)
	f.svc.Register(f.mux)
	if !slices.Contains(f.mux.Features(), NS) {
		t.Fatalf("feature %s not registered", NS)
	}
	return f
}

func query(children ...*stream.Element) *stream.Element {
	q := stream.NewElement(NS, "query")
	for _, c := range children {
		q.AddChild(c)
	}
	return q
}

func field(name, value string) *stream.Element {
	return stream.NewElement(NS, name).AddText(value)
}

func creds(user, password string) *stream.Element {
	return query(field("username", user), field("password", password))
}

func preAuth(f *fixture, addr string, typ string, q *stream.Element) (*stream.Element, error) {
	var a netip.Addr
	if addr != "" {
		a = netip.MustParseAddr(addr)
	}
	return f.svc.PreAuth(a).HandleIQ(context.Background(), router.IQ{To: jid.MustParse("example.org"), Type: typ, Payload: q})
}

func authed(f *fixture, from, to, typ string, q *stream.Element) (*stream.Element, error) {
	h := f.mux.Lookup(stream.Name{Space: NS, Local: "query"})
	return h.HandleIQ(context.Background(), router.IQ{From: jid.MustParse(from), To: jid.MustParse(to), Type: typ, Payload: q})
}

func condition(err error) stanza.Condition {
	var se *stanza.Error
	if errors.As(err, &se) {
		return se.Condition
	}
	return ""
}

func TestPreAuthForm(t *testing.T) {
	f := setup(t, Config{Open: true})
	res, err := preAuth(f, "192.0.2.1", "get", query())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"instructions", "username", "password"} {
		if res.Child(c, NS) == nil {
			t.Errorf("form lacks <%s/>: %v", c, res)
		}
	}
	if res.Child("instructions", NS).Text() != DefaultInstructions {
		t.Errorf("instructions %q", res.Child("instructions", NS).Text())
	}
	if el := f.svc.StreamFeature(); el == nil || el.Name != (stream.Name{Space: NSFeature, Local: "register"}) {
		t.Errorf("StreamFeature = %v", el)
	}
}

func TestPreAuthRegister(t *testing.T) {
	ctx := context.Background()
	f := setup(t, Config{Open: true})
	if _, err := preAuth(f, "192.0.2.1", "set", creds("Juliet", "r0meo!")); err != nil {
		t.Fatal(err)
	}
	if err := f.acc.VerifyPassword(ctx, jid.MustParse("juliet@example.org"), "r0meo!"); err != nil {
		t.Errorf("registered account does not log in: %v", err)
	}
	tests := []struct {
		name string
		typ  string
		q    *stream.Element
		want stanza.Condition
	}{
		{"taken", "set", creds("juliet", "x"), stanza.Conflict},
		{"no password", "set", query(field("username", "romeo")), stanza.NotAcceptable},
		{"empty password", "set", query(field("username", "romeo"), stream.NewElement(NS, "password")), stanza.NotAcceptable},
		{"no username", "set", query(field("password", "x")), stanza.NotAcceptable},
		{"bad username", "set", creds("ro meo", "x"), stanza.NotAcceptable},
		{"username with @", "set", creds("romeo@evil.example", "x"), stanza.NotAcceptable},
		{"bad password", "set", creds("romeo", "pass\x07"), stanza.NotAcceptable},
		{"remove", "set", query(stream.NewElement(NS, "remove")), stanza.NotAuthorized},
		{"other payload", "get", stream.NewElement("jabber:iq:roster", "query"), stanza.ServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := preAuth(f, "192.0.2.1", tt.typ, tt.q)
			if got := condition(err); got != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
	if ok, _ := f.acc.Exists(ctx, jid.MustParse("romeo@example.org")); ok {
		t.Error("a refused registration created romeo")
	}
}

func TestClosed(t *testing.T) {
	f := setup(t, Config{Open: false})
	if _, err := preAuth(f, "192.0.2.1", "get", query()); condition(err) != stanza.ServiceUnavailable {
		t.Errorf("get: %v", err)
	}
	if _, err := preAuth(f, "192.0.2.1", "set", creds("juliet", "x")); condition(err) != stanza.NotAllowed {
		t.Errorf("set: %v", err)
	}
	if ok, _ := f.acc.Exists(context.Background(), jid.MustParse("juliet@example.org")); ok {
		t.Error("registered while closed")
	}
	if f.svc.StreamFeature() != nil {
		t.Error("closed registration advertised")
	}
}

func TestRateLimit(t *testing.T) {
	f := setup(t, Config{Open: true, MaxPerAddress: 2, Window: time.Hour})
	n := 0
	register := func(addr string) error {
		n++
		_, err := preAuth(f, addr, "set", creds("user"+string(rune('a'+n)), "pw"))
		return err
	}
	steps := []struct {
		addr string
		ok   bool
	}{
		{"192.0.2.1", true},
		{"192.0.2.1", true},
		{"192.0.2.1", false},
		{"::ffff:192.0.2.1", false}, // the same address, IPv4-mapped
		{"192.0.2.2", true},
		{"2001:db8::1", true},
		{"2001:db8::2", true},
		{"2001:db8::3", false}, // same /64
		{"2001:db8:0:1::1", true},
		{"", true}, // unknown address: not limited
		{"", true},
		{"", true},
	}
	for i, s := range steps {
		err := register(s.addr)
		if s.ok != (err == nil) || (!s.ok && condition(err) != stanza.PolicyViolation) {
			t.Errorf("step %d (%s): %v, want ok=%v", i, s.addr, err, s.ok)
		}
	}
	f.clock.t = f.clock.t.Add(time.Hour)
	if err := register("192.0.2.1"); err != nil {
		t.Errorf("after the window: %v", err)
	}
	// A refused registration does not count.
	f.clock.t = f.clock.t.Add(time.Hour)
	for range 3 {
		if _, err := preAuth(f, "198.51.100.1", "set", creds("useraa", "pw")); err != nil && condition(err) != stanza.Conflict {
			t.Fatal(err)
		}
	}
	if err := register("198.51.100.1"); err != nil {
		t.Errorf("conflicts counted against the limit: %v", err)
	}
}

func TestAuthenticated(t *testing.T) {
	ctx := context.Background()
	f := setup(t, Config{Open: false}) // password change and removal work with registration closed
	juliet := jid.MustParse("juliet@example.org")
	if err := f.acc.Register(ctx, juliet, "old"); err != nil {
		t.Fatal(err)
	}
	const full = "juliet@example.org/balcony"

	res, err := authed(f, full, "example.org", "get", query())
	if err != nil || res.Child("registered", NS) == nil || res.Child("username", NS).Text() != "juliet" {
		t.Errorf("get: %v, %v", res, err)
	}

	tests := []struct {
		name string
		to   string
		q    *stream.Element
		want stanza.Condition
	}{
		{"someone else's password", "example.org", creds("romeo", "new"), stanza.NotAllowed},
		{"no password", "example.org", query(field("username", "juliet")), stanza.BadRequest},
		{"bad password", "example.org", creds("juliet", "\x07"), stanza.NotAcceptable},
		{"to another user", "romeo@example.org", creds("juliet", "new"), stanza.ServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authed(f, full, tt.to, "set", tt.q)
			if got := condition(err); got != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
	if err := f.acc.VerifyPassword(ctx, juliet, "old"); err != nil {
		t.Fatalf("refused changes changed the password: %v", err)
	}

	// Change, addressed to the server and (no 'to') to the user.
	if _, err := authed(f, full, "example.org", "set", creds("Juliet", "new")); err != nil {
		t.Fatal(err)
	}
	if err := f.acc.VerifyPassword(ctx, juliet, "new"); err != nil {
		t.Errorf("password not changed: %v", err)
	}
	if _, err := authed(f, full, "juliet@example.org", "set", creds("juliet", "newer")); err != nil {
		t.Fatal(err)
	}
	if err := f.acc.VerifyPassword(ctx, juliet, "newer"); err != nil {
		t.Errorf("password not changed: %v", err)
	}

	// Removal.
	if len(f.removed) != 0 {
		t.Fatal("OnRemoved called early")
	}
	if _, err := authed(f, full, "example.org", "set", query(stream.NewElement(NS, "remove"))); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.acc.Exists(ctx, juliet); ok {
		t.Error("account still exists after remove")
	}
	if !slices.Equal(f.removed, []string{full}) {
		t.Errorf("OnRemoved got %q", f.removed)
	}
	if _, err := authed(f, full, "example.org", "set", query(stream.NewElement(NS, "remove"))); condition(err) != stanza.RegistrationRequired {
		t.Errorf("second remove: %v", err)
	}
}
