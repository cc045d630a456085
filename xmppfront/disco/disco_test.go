package disco

import (
	"context"
	"errors"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// TestVerXEP0115Example is the simple generation example of XEP-0115 §5.2.
func TestVerXEP0115Example(t *testing.T) {
	got := Ver(
		[]Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		[]string{
			"http://jabber.org/protocol/disco#info",
			"http://jabber.org/protocol/muc",
			"http://jabber.org/protocol/caps",
			"http://jabber.org/protocol/disco#items",
		})
	if want := "QgayPKawpkPSDYmwT/WM94uAlu0="; got != want {
		t.Errorf("Ver = %s, want %s", got, want)
	}
}

// TestVerOrder checks the sort rules of §5.1 with identities that differ
// only in type and lang: the result must not depend on input order.
func TestVerOrder(t *testing.T) {
	a := []Identity{
		{Category: "client", Type: "pc", Lang: "en", Name: "Psi"},
		{Category: "client", Type: "pc", Lang: "el", Name: "Ψ"},
		{Category: "auth", Type: "pc", Name: "x"},
	}
	f := []string{"b", "a", "a"}
	want := Ver([]Identity{a[2], a[1], a[0]}, []string{"a", "b"})
	if got := Ver(a, f); got != want {
		t.Errorf("Ver depends on input order: %s vs %s", got, want)
	}
	if Ver(a, []string{"a"}) == want {
		t.Error("Ver ignores features")
	}
}

type subs map[string]bool

func (s subs) IsSubscriber(_ context.Context, user, contact jid.JID) (bool, error) {
	return s[user.String()+" "+contact.String()], nil
}

func setup(t *testing.T) (*Service, *router.Mux) {
	t.Helper()
	m := router.NewMux()
	m.Feature("urn:xmpp:ping")
	s := New(Config{Domain: "example.org", Subscribers: subs{"alice@example.org romeo@example.net": true}})
	s.Register(m)
	return s, m
}

func query(ns, node string) *stream.Element {
	q := stream.NewElement(ns, "query")
	if node != "" {
		q.SetAttr("node", node)
	}
	return q
}

func call(t *testing.T, m *router.Mux, typ, from, to string, payload *stream.Element) (*stream.Element, error) {
	t.Helper()
	h := m.Lookup(payload.Name)
	if h == nil {
		t.Fatalf("no handler for %v", payload.Name)
	}
	return h.HandleIQ(context.Background(), router.IQ{
		From: jid.MustParse(from), To: jid.MustParse(to), Type: typ, Payload: payload,
		Stanza: stream.NewElement(stanza.NSClient, "iq", "type", typ, "id", "1").AddChild(payload),
	})
}

func condition(err error) stanza.Condition {
	var se *stanza.Error
	if errors.As(err, &se) {
		return se.Condition
	}
	return ""
}

func TestServerInfo(t *testing.T) {
	s, m := setup(t)
	res, err := call(t, m, "get", "alice@example.org/phone", "example.org", query(NSInfo, ""))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Child("identity", "")
	if id == nil || id.Attr("category") != "server" || id.Attr("type") != "im" {
		t.Errorf("identity: %v", res)
	}
	var features []string
	for c := range res.Children() {
		if c.Name.Local == "feature" {
			features = append(features, c.Attr("var"))
		}
	}
	if want := []string{NSInfo, NSItems, "urn:xmpp:ping"}; !slices.Equal(features, want) {
		t.Errorf("features %q, want %q", features, want)
	}

	// The caps hash covers exactly what disco#info says.
	caps := s.Caps()
	want := Ver([]Identity{{Category: "server", Type: "im", Name: "verlauf"}}, features)
	if caps.Name != (stream.Name{Space: NSCaps, Local: "c"}) || caps.Attr("hash") != "sha-1" || caps.Attr("node") != DefaultNode || caps.Attr("ver") != want {
		t.Errorf("Caps = %v, want ver %s", caps, want)
	}
	// The caps node is answered, with the node echoed.
	res, err = call(t, m, "get", "alice@example.org/phone", "example.org", query(NSInfo, DefaultNode+"#"+want))
	if err != nil || res.Attr("node") != DefaultNode+"#"+want || res.Child("identity", "") == nil {
		t.Errorf("caps node: %v, %v", res, err)
	}
	// A feature registered later changes the hash.
	m.Feature("urn:xmpp:blocking")
	if s.Caps().Attr("ver") == want {
		t.Error("caps ver did not follow a new feature")
	}
}

func TestErrors(t *testing.T) {
	_, m := setup(t)
	tests := []struct {
		name, typ, from, to string
		payload             *stream.Element
		want                stanza.Condition
	}{
		{"unknown info node", "get", "alice@example.org/a", "example.org", query(NSInfo, "nope"), stanza.ItemNotFound},
		{"stale caps node", "get", "alice@example.org/a", "example.org", query(NSInfo, DefaultNode+"#AAAA"), stanza.ItemNotFound},
		{"unknown items node", "get", "alice@example.org/a", "example.org", query(NSItems, "nope"), stanza.ItemNotFound},
		{"set", "set", "alice@example.org/a", "example.org", query(NSInfo, ""), stanza.BadRequest},
		{"stranger on account", "get", "mallory@evil.example/x", "alice@example.org", query(NSInfo, ""), stanza.ServiceUnavailable},
		{"stranger on account items", "get", "mallory@evil.example/x", "alice@example.org", query(NSItems, ""), stanza.ServiceUnavailable},
		{"node on account", "get", "alice@example.org/a", "alice@example.org", query(NSInfo, "x"), stanza.ItemNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := call(t, m, tt.typ, tt.from, tt.to, tt.payload)
			if got := condition(err); got != tt.want {
				t.Errorf("got %v, %v; want %s", res, err, tt.want)
			}
		})
	}
}

func TestAccountInfo(t *testing.T) {
	_, m := setup(t)
	for _, from := range []string{"alice@example.org/phone", "romeo@example.net/orchard"} {
		res, err := call(t, m, "get", from, "alice@example.org", query(NSInfo, ""))
		if err != nil {
			t.Fatalf("from %s: %v", from, err)
		}
		id := res.Child("identity", "")
		if id == nil || id.Attr("category") != "account" || id.Attr("type") != "registered" {
			t.Errorf("from %s: %v", from, res)
		}
	}
	res, err := call(t, m, "get", "alice@example.org/phone", "alice@example.org", query(NSItems, ""))
	if err != nil || len(res.Nodes) != 0 || res.Name.Space != NSItems {
		t.Errorf("account items: %v, %v", res, err)
	}
	res, err = call(t, m, "get", "alice@example.org/phone", "example.org", query(NSItems, ""))
	if err != nil || len(res.Nodes) != 0 {
		t.Errorf("server items: %v, %v", res, err)
	}
}

type commandsNode struct{}

func (commandsNode) DiscoNode(_ context.Context, iq router.IQ, node string) (*stream.Element, bool, error) {
	if node != "commands" {
		return nil, false, nil
	}
	q := stream.NewElement(iq.Payload.Name.Space, "query", "node", node)
	return q.AddChild(stream.NewElement(NSItems, "item", "jid", "example.org", "node", "history")), true, nil
}

// Features offered per account show on the bare JID, and node providers
// answer for their nodes while unknown nodes stay item-not-found.
func TestAccountFeaturesAndNodes(t *testing.T) {
	m := router.NewMux()
	s := New(Config{Domain: "example.org", AccountFeatures: []string{"urn:xmpp:mam:2"}, Nodes: []NodeProvider{commandsNode{}}})
	s.Register(m)
	res, err := call(t, m, "get", "alice@example.org/phone", "alice@example.org", query(NSInfo, ""))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for c := range res.Children() {
		found = found || c.Attr("var") == "urn:xmpp:mam:2"
	}
	if !found {
		t.Errorf("account disco#info lacks urn:xmpp:mam:2: %v", res)
	}
	res, err = call(t, m, "get", "alice@example.org/phone", "example.org", query(NSItems, "commands"))
	if err != nil || res.Child("item", "").Attr("node") != "history" {
		t.Errorf("commands node: %v, %v", res, err)
	}
	if _, err := call(t, m, "get", "alice@example.org/phone", "example.org", query(NSItems, "nope")); condition(err) != stanza.ItemNotFound {
		t.Errorf("unknown node: %v, want item-not-found", err)
	}
}
