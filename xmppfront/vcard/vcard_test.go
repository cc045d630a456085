package vcard

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

func setup(t *testing.T, maxBytes int) (router.IQHandler, eventstore.Store) {
	t.Helper()
	st, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := router.NewMux()
	New(Config{Store: st, MaxBytes: maxBytes}).Register(m)
	if !slices.Contains(m.Features(), NS) {
		t.Fatalf("feature %s not registered", NS)
	}
	return m.Lookup(stream.Name{Space: NS, Local: "vCard"}), st
}

func iq(typ, from, to string, payload *stream.Element) router.IQ {
	return router.IQ{From: jid.MustParse(from), To: jid.MustParse(to), Type: typ, Payload: payload}
}

func card(t *testing.T, x string) *stream.Element {
	t.Helper()
	el, err := parse(x)
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func head(t *testing.T, st eventstore.Store) eventstore.Position {
	t.Helper()
	p, err := st.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSetAndGet(t *testing.T) {
	ctx := context.Background()
	h, st := setup(t, 0)
	juliet := card(t, `<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN><N><FAMILY>Capulet</FAMILY><GIVEN>Juliet</GIVEN></N><PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0=</BINVAL></PHOTO></vCard>`)

	// Nothing stored yet: an empty vCard, for the owner and for others.
	for _, from := range []string{"juliet@example.org/balcony", "romeo@example.net/orchard"} {
		res, err := h.HandleIQ(ctx, iq("get", from, "juliet@example.org", stream.NewElement(NS, "vCard")))
		if err != nil || !res.Equal(stream.NewElement(NS, "vCard")) {
			t.Fatalf("get before set from %s: %v, %v", from, res, err)
		}
	}

	if res, err := h.HandleIQ(ctx, iq("set", "juliet@example.org/balcony", "juliet@example.org", juliet)); err != nil || res != nil {
		t.Fatalf("set: %v, %v", res, err)
	}
	for _, from := range []string{"juliet@example.org/balcony", "romeo@example.net/orchard", "nurse@example.org/kitchen"} {
		res, err := h.HandleIQ(ctx, iq("get", from, "juliet@example.org", stream.NewElement(NS, "vCard")))
		if err != nil || !res.Equal(juliet) {
			t.Errorf("get from %s: %v, %v; want %v", from, res, err, juliet)
		}
	}

	// Setting the same card again records nothing.
	before := head(t, st)
	if _, err := h.HandleIQ(ctx, iq("set", "juliet@example.org/phone", "juliet@example.org", juliet.Clone())); err != nil {
		t.Fatal(err)
	}
	if after := head(t, st); after != before {
		t.Errorf("unchanged set appended: head %v → %v", before, after)
	}

	// A new card replaces the old one.
	nick := card(t, `<vCard xmlns='vcard-temp'><NICKNAME>J</NICKNAME></vCard>`)
	if _, err := h.HandleIQ(ctx, iq("set", "juliet@example.org/phone", "juliet@example.org", nick)); err != nil {
		t.Fatal(err)
	}
	res, err := h.HandleIQ(ctx, iq("get", "romeo@example.net/orchard", "juliet@example.org", stream.NewElement(NS, "vCard")))
	if err != nil || !res.Equal(nick) {
		t.Errorf("get after replace: %v, %v", res, err)
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	h, st := setup(t, 100)
	big := stream.NewElement(NS, "vCard")
	big.AddChild(stream.NewElement(NS, "DESC").AddText(strings.Repeat("x", 100)))
	tests := []struct {
		name string
		iq   router.IQ
		want stanza.Condition
	}{
		{"set for another user", iq("set", "romeo@example.net/orchard", "juliet@example.org", stream.NewElement(NS, "vCard")), stanza.Forbidden},
		{"set on the server", iq("set", "juliet@example.org/balcony", "example.org", stream.NewElement(NS, "vCard")), stanza.Forbidden},
		{"too large", iq("set", "juliet@example.org/balcony", "juliet@example.org", big), stanza.NotAcceptable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.HandleIQ(ctx, tt.iq)
			var se *stanza.Error
			if !errors.As(err, &se) || se.Condition != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
	if p := head(t, st); p != eventstore.Start {
		t.Errorf("refused sets wrote to the store: head %v", p)
	}
	res, err := h.HandleIQ(ctx, iq("get", "juliet@example.org/balcony", "example.org", stream.NewElement(NS, "vCard")))
	if err != nil || !res.Equal(stream.NewElement(NS, "vCard")) {
		t.Errorf("server vCard: %v, %v", res, err)
	}
}
