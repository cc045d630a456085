package private

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

func setup(t *testing.T, cfg Config) (router.IQHandler, eventstore.Store) {
	t.Helper()
	st, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Store = st
	m := router.NewMux()
	New(cfg).Register(m)
	if !slices.Contains(m.Features(), NS) {
		t.Fatalf("feature %s not registered", NS)
	}
	return m.Lookup(stream.Name{Space: NS, Local: "query"}), st
}

// query parses a jabber:iq:private query as a client would send it.
func query(t *testing.T, inner string) *stream.Element {
	t.Helper()
	el, err := parse("<query xmlns='jabber:iq:private'>" + inner + "</query>")
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func iq(typ, from, to string, payload *stream.Element) router.IQ {
	return router.IQ{From: jid.MustParse(from), To: jid.MustParse(to), Type: typ, Payload: payload}
}

const (
	juliet     = "juliet@example.org/balcony"
	julietBare = "juliet@example.org"
	bookmarks  = `<storage xmlns='storage:bookmarks'><conference jid='council@conference.example.org' autojoin='true' name='Council'><nick>Juliet</nick></conference></storage>`
)

func TestStoreAndRetrieve(t *testing.T) {
	ctx := context.Background()
	h, _ := setup(t, Config{})

	// Nothing stored: the request comes back as asked.
	res, err := h.HandleIQ(ctx, iq("get", juliet, julietBare, query(t, "<storage xmlns='storage:bookmarks'/>")))
	if err != nil || !res.Equal(query(t, "<storage xmlns='storage:bookmarks'/>")) {
		t.Fatalf("get before set: %v, %v", res, err)
	}

	if res, err := h.HandleIQ(ctx, iq("set", juliet, julietBare, query(t, bookmarks+"<prefs xmlns='exodus:prefs'><defaultnick>J</defaultnick></prefs>"))); err != nil || res != nil {
		t.Fatalf("set: %v, %v", res, err)
	}
	tests := []struct{ ask, want string }{
		{"<storage xmlns='storage:bookmarks'/>", bookmarks},
		{"<prefs xmlns='exodus:prefs'/>", "<prefs xmlns='exodus:prefs'><defaultnick>J</defaultnick></prefs>"},
		// Same name, other namespace: a different item.
		{"<storage xmlns='storage:rosternotes'/>", "<storage xmlns='storage:rosternotes'/>"},
	}
	for _, tt := range tests {
		// From another resource of the same user.
		res, err := h.HandleIQ(ctx, iq("get", "juliet@example.org/phone", julietBare, query(t, tt.ask)))
		if err != nil || !res.Equal(query(t, tt.want)) {
			t.Errorf("get %s: %v, %v; want %s", tt.ask, res, err, tt.want)
		}
	}

	// A set replaces the item.
	if _, err := h.HandleIQ(ctx, iq("set", juliet, julietBare, query(t, "<storage xmlns='storage:bookmarks'/>"))); err != nil {
		t.Fatal(err)
	}
	res, err = h.HandleIQ(ctx, iq("get", juliet, julietBare, query(t, "<storage xmlns='storage:bookmarks'/>")))
	if err != nil || !res.Equal(query(t, "<storage xmlns='storage:bookmarks'/>")) {
		t.Errorf("get after replace: %v, %v", res, err)
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	h, st := setup(t, Config{MaxItemBytes: 200, MaxItems: 1})
	tests := []struct {
		name string
		iq   router.IQ
		want stanza.Condition
	}{
		{"jabber namespace", iq("set", juliet, julietBare, query(t, "<query xmlns='jabber:iq:roster'/>")), stanza.NotAcceptable},
		{"vcard-temp", iq("get", juliet, julietBare, query(t, "<vCard xmlns='vcard-temp'/>")), stanza.NotAcceptable},
		{"unqualified child", iq("set", juliet, julietBare, query(t, "<data/>")), stanza.NotAcceptable},
		{"no child", iq("get", juliet, julietBare, query(t, "")), stanza.NotAcceptable},
		{"two in a get", iq("get", juliet, julietBare, query(t, "<a xmlns='urn:a'/><b xmlns='urn:b'/>")), stanza.NotAcceptable},
		{"another user's", iq("get", "romeo@example.net/orchard", julietBare, query(t, "<a xmlns='urn:a'/>")), stanza.Forbidden},
		{"the server's", iq("set", juliet, "example.org", query(t, "<a xmlns='urn:a'/>")), stanza.Forbidden},
		{"too large", iq("set", juliet, julietBare, query(t, "<a xmlns='urn:a'>"+strings.Repeat("x", 200)+"</a>")), stanza.NotAcceptable},
		{"too many", iq("set", juliet, julietBare, query(t, "<a xmlns='urn:a'/><b xmlns='urn:b'/>")), stanza.ResourceConstraint},
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
	if p, err := st.Head(ctx); err != nil || p != eventstore.Start {
		t.Errorf("refused requests wrote to the store: %v, %v", p, err)
	}
}
