package roster_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"verlauf.im/verlauf/xmppfront/roster"
	"verlauf.im/verlauf/xmppfront/roster/rostertest"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// item builds a roster <item/> with attributes and groups.
func item(jidAttr string, attrs []string, groups ...string) *stream.Element {
	el := stream.NewElement(roster.NS, "item", append([]string{"jid", jidAttr}, attrs...)...)
	for _, g := range groups {
		el.AddChild(stream.NewElement(roster.NS, "group").AddText(g))
	}
	return el
}

// describe renders an <item/> as "jid name=.. sub=.. [ask] [approved] [g1,g2]".
func describe(it *stream.Element) string {
	var groups []string
	for g := range it.Children() {
		groups = append(groups, g.Text())
	}
	s := fmt.Sprintf("%s name=%s sub=%s", it.Attr("jid"), it.Attr("name"), it.Attr("subscription"))
	if a := it.Attr("ask"); a != "" {
		s += " ask=" + a
	}
	if it.Attr("approved") == "true" {
		s += " approved"
	}
	if len(groups) > 0 {
		s += " [" + strings.Join(groups, ",") + "]"
	}
	return s
}

func describeQuery(q *stream.Element) []string {
	var out []string
	for it := range q.Children() {
		out = append(out, describe(it))
	}
	return out
}

// pushes returns the roster pushes among sts as "ver=N <item>".
func pushes(t *testing.T, sts []*stream.Element, to string) []string {
	t.Helper()
	var out []string
	for _, st := range sts {
		if st.Name.Local != "iq" {
			continue
		}
		q := st.Child("query", roster.NS)
		if q == nil || st.Attr("type") != "set" {
			continue
		}
		if st.Attr("to") != to || st.Attr("from") != "" || st.Attr("id") == "" {
			t.Errorf("push addressed wrongly: %s", st)
		}
		for it := range q.Children() {
			out = append(out, "ver="+q.Attr("ver")+" "+describe(it))
		}
	}
	return out
}

func stanzaErr(t *testing.T, err error) *stanza.Error {
	t.Helper()
	var se *stanza.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a stanza error", err)
	}
	return se
}

func TestRosterSetGetPush(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{}, "alice@example.org", "bob@example.org")
	phone := env.Login("alice@example.org/phone")
	laptop := env.Login("alice@example.org/laptop")
	quiet := env.Login("alice@example.org/watch") // never asks for the roster

	q, err := phone.RosterGet("")
	if err != nil {
		t.Fatal(err)
	}
	if q.Attr("ver") != "0" || len(describeQuery(q)) != 0 {
		t.Fatalf("empty roster = %s", q)
	}
	if _, err := laptop.RosterGet(""); err != nil {
		t.Fatal(err)
	}

	if err := phone.RosterSet(item("Bob@Example.org", []string{"name", "Bob"}, "Friends", "Work")); err != nil {
		t.Fatalf("set: %v", err)
	}
	want := []string{"ver=1 bob@example.org name=Bob sub=none [Friends,Work]"}
	for _, c := range []*rostertest.Client{phone, laptop} {
		if got := pushes(t, c.Take(), c.JID.String()); !slices.Equal(got, want) {
			t.Errorf("%s pushes = %q, want %q", c.JID, got, want)
		}
	}
	if got := quiet.Take(); len(got) != 0 {
		t.Errorf("a resource that never asked for the roster got %v", got)
	}

	// A get right after the set sees it.
	q, err = laptop.RosterGet("")
	if err != nil {
		t.Fatal(err)
	}
	if got := describeQuery(q); q.Attr("ver") != "1" || !slices.Equal(got, []string{"bob@example.org name=Bob sub=none [Friends,Work]"}) {
		t.Fatalf("roster after set = ver %q %q", q.Attr("ver"), got)
	}
	// XEP-0237: the current version gets an empty result; another gets all.
	if q, err := laptop.RosterGet("1"); err != nil || q != nil {
		t.Errorf("get with current ver = %v, %v; want empty result", q, err)
	}
	if q, err := laptop.RosterGet("0"); err != nil || q == nil || len(describeQuery(q)) != 1 {
		t.Errorf("get with old ver = %v, %v; want the roster", q, err)
	}

	// Renaming pushes; a set that changes nothing pushes nothing.
	if err := phone.RosterSet(item("bob@example.org", []string{"name", "Bobby"})); err != nil {
		t.Fatal(err)
	}
	if got := pushes(t, laptop.Take(), laptop.JID.String()); !slices.Equal(got, []string{"ver=2 bob@example.org name=Bobby sub=none"}) {
		t.Errorf("rename pushes = %q", got)
	}
	phone.Take()
	if err := phone.RosterSet(item("bob@example.org", []string{"name", "Bobby", "subscription", "both", "ask", "subscribe"})); err != nil {
		t.Fatal(err)
	}
	if got := laptop.Take(); len(got) != 0 {
		t.Errorf("a set that changes nothing (client-set subscription is ignored) pushed %v", got)
	}

	if err := phone.RosterSet(item("bob@example.org", []string{"subscription", "remove"})); err != nil {
		t.Fatal(err)
	}
	if got := pushes(t, laptop.Take(), laptop.JID.String()); !slices.Equal(got, []string{"ver=3 bob@example.org name= sub=remove"}) {
		t.Errorf("remove pushes = %q", got)
	}
	err = phone.RosterSet(item("bob@example.org", []string{"subscription", "remove"}))
	if se := stanzaErr(t, err); se.Condition != stanza.ItemNotFound {
		t.Errorf("removing a missing item: %v", err)
	}
	q, err = phone.RosterGet("2")
	if err != nil || q == nil || q.Attr("ver") != "3" || len(describeQuery(q)) != 0 {
		t.Errorf("roster after remove = %v, %v", q, err)
	}
}

func TestRosterIQErrors(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{MaxItems: 2}, "alice@example.org", "bob@example.org")
	alice := env.Login("alice@example.org/phone")
	if err := alice.RosterSet(item("full1@example.org", nil)); err != nil {
		t.Fatal(err)
	}
	if err := alice.RosterSet(item("full2@example.org", nil)); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 1024)
	query := func(items ...*stream.Element) *stream.Element {
		q := stream.NewElement(roster.NS, "query")
		for _, it := range items {
			q.AddChild(it)
		}
		return q
	}
	tests := []struct {
		name    string
		typ, to string
		payload *stream.Element
		want    stanza.Condition
	}{
		{"get for another user", "get", "bob@example.org", query(), stanza.Forbidden},
		{"set for another user", "set", "bob@example.org", query(item("carol@example.org", nil)), stanza.Forbidden},
		{"get to the server", "get", "example.org", query(), stanza.Forbidden},
		{"no item", "set", "", query(), stanza.BadRequest},
		{"two items", "set", "", query(item("a@example.org", nil), item("b@example.org", nil)), stanza.BadRequest},
		{"no jid", "set", "", query(stream.NewElement(roster.NS, "item", "name", "x")), stanza.BadRequest},
		{"malformed jid", "set", "", query(item("a@b@c", nil)), stanza.JIDMalformed},
		{"full jid", "set", "", query(item("a@example.org/res", nil)), stanza.BadRequest},
		{"duplicate group", "set", "", query(item("a@example.org", nil, "G", "G")), stanza.BadRequest},
		{"empty group", "set", "", query(item("a@example.org", nil, "")), stanza.NotAcceptable},
		{"long group", "set", "", query(item("a@example.org", nil, long)), stanza.NotAcceptable},
		{"long name", "set", "", query(item("a@example.org", []string{"name", long})), stanza.NotAcceptable},
		{"remove missing", "set", "", query(item("a@example.org", []string{"subscription", "remove"})), stanza.ItemNotFound},
		{"roster full", "set", "", query(item("full3@example.org", nil)), stanza.NotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head, err := env.Store.Head(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			_, err = alice.IQ(tt.typ, tt.to, tt.payload)
			if se := stanzaErr(t, err); se.Condition != tt.want {
				t.Errorf("got %v, want %s", err, tt.want)
			}
			// Bad input writes nothing to the store.
			if after, err := env.Store.Head(t.Context()); err != nil || after != head {
				t.Errorf("store moved from %v to %v (%v)", head, after, err)
			}
		})
	}
	// Renaming an item already in a full roster is allowed.
	if err := alice.RosterSet(item("full1@example.org", []string{"name", "One"})); err != nil {
		t.Errorf("rename in a full roster: %v", err)
	}
}

func TestRosterSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	env := rostertest.Start(t, dir, roster.Options{}, "alice@example.org")
	alice := env.Login("alice@example.org/phone")
	if err := alice.RosterSet(item("bob@example.org", []string{"name", "Bob"}, "Friends")); err != nil {
		t.Fatal(err)
	}
	if err := alice.RosterSet(item("carol@example.org", nil)); err != nil {
		t.Fatal(err)
	}
	env.Close()

	env = rostertest.Start(t, dir, roster.Options{}, "alice@example.org")
	alice = env.Login("alice@example.org/phone")
	q, err := alice.RosterGet("")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bob@example.org name=Bob sub=none [Friends]", "carol@example.org name= sub=none"}
	if got := describeQuery(q); q.Attr("ver") != "2" || !slices.Equal(got, want) {
		t.Fatalf("after restart: ver %q %q, want 2 %q", q.Attr("ver"), got, want)
	}
	// The version keeps counting from where it was.
	alice.RosterGet("2")
	if err := alice.RosterSet(item("dave@example.org", nil)); err != nil {
		t.Fatal(err)
	}
	if got := pushes(t, alice.Take(), alice.JID.String()); !slices.Equal(got, []string{"ver=3 dave@example.org name= sub=none"}) {
		t.Errorf("push after restart = %q", got)
	}
}

func TestStreamFeaturesAndDisco(t *testing.T) {
	env := rostertest.Start(t, t.TempDir(), roster.Options{})
	if !slices.Contains(env.Mux.Features(), roster.NS) {
		t.Errorf("disco features %q lack %s", env.Mux.Features(), roster.NS)
	}
	var got []string
	for _, f := range roster.StreamFeatures() {
		got = append(got, f.String())
	}
	want := []string{`<ver xmlns='urn:xmpp:features:rosterver'/>`, `<sub xmlns='urn:xmpp:features:pre-approval'/>`}
	if !slices.Equal(got, want) {
		t.Errorf("stream features = %q", got)
	}
}
