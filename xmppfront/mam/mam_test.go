package mam

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

const (
	juliet  = "juliet@example.org"
	balcony = "juliet@example.org/balcony"
	chamber = "juliet@example.org/chamber"
)

// checkBodies checks that page p holds the messages at indexes want of
// the history, in that order, each with its original stanza and stamp.
func checkBodies(t *testing.T, p page, ids []uuid.UUID, want []int) {
	t.Helper()
	got := make([]int, len(p.ids))
	for i, id := range p.ids {
		got[i] = slices.Index(ids, id)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("results %v, want %v", got, want)
	}
	for i, n := range want {
		m := p.msgs[i]
		if b := m.Child("body", ""); b == nil || b.Text() != fmt.Sprint("msg ", n) || m.Attr("id") != fmt.Sprint("m", n) {
			t.Fatalf("result %d forwards %s, want message %d", i, m, n)
		}
		if p.stamps[i] != formatDateTime(minute(n)) {
			t.Fatalf("result %d stamped %s, want %s", i, p.stamps[i], formatDateTime(minute(n)))
		}
	}
}

func span(from, to, step int) []int {
	var out []int
	if step > 0 {
		for i := from; i < to; i += step {
			out = append(out, i)
		}
	} else {
		for i := from; i > to; i += step {
			out = append(out, i)
		}
	}
	return out
}

// TestPaging pages through 120 messages with max 50, forwards from the
// start and backwards from the end, as a second device syncing history
// does.
func TestPaging(t *testing.T) {
	e := newEnv(t, archive.Config{}, nil)
	user := e.login(juliet)
	ids := e.history(user, 120)

	type step struct {
		rsm      []string
		want     []int
		index    string
		complete bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"forwards", []step{
			{[]string{"max", "50"}, span(0, 50, 1), "0", false},
			{[]string{"max", "50", "after", ids[49].String()}, span(50, 100, 1), "", false},
			{[]string{"max", "50", "after", ids[99].String()}, span(100, 120, 1), "", true},
		}},
		{"backwards", []step{
			{[]string{"max", "50", "before", "-"}, span(70, 120, 1), "70", false},
			{[]string{"max", "50", "before", ids[70].String()}, span(20, 70, 1), "", false},
			{[]string{"max", "50", "before", ids[20].String()}, span(0, 20, 1), "", true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, s := range tc.steps {
				p, err := e.query(chamber, mamQuery(fmt.Sprint("q", i), nil, s.rsm))
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				checkBodies(t, p, ids, s.want)
				if p.first != ids[s.want[0]].String() || p.last != ids[s.want[len(s.want)-1]].String() {
					t.Fatalf("step %d: first %s last %s", i, p.first, p.last)
				}
				if p.index != s.index || p.count != "120" || p.complete != s.complete {
					t.Fatalf("step %d: index %q count %q complete %v; want %q 120 %v", i, p.index, p.count, p.complete, s.index, s.complete)
				}
			}
		})
	}
}

func TestQuery(t *testing.T) {
	e := newEnv(t, archive.Config{MaxPageSize: 100}, nil)
	user := e.login(juliet)
	ids := e.history(user, 120)
	id := func(i int) string { return ids[i].String() }

	tests := []struct {
		name     string
		fields   []string // nil: no form
		rsm      []string
		flip     bool
		want     []int
		count    string // "" for none
		index    string
		complete bool
		capped   string // the max of <capped/>, "" for none
	}{
		{name: "no form, default page", want: span(0, 50, 1), count: "120", index: "0"},
		{name: "with", fields: []string{"with", "romeo@example.net"}, rsm: []string{"max", "10"},
			want: span(0, 20, 2), count: "60", index: "0"},
		{name: "with a full JID selects the bare conversation", fields: []string{"with", "mercutio@example.net/elsewhere"}, rsm: []string{"max", "3"},
			want: []int{1, 3, 5}, count: "60", index: "0"},
		{name: "with, last page", fields: []string{"with", "romeo@example.net"}, rsm: []string{"max", "5", "before", "-"},
			want: span(110, 120, 2), count: "60", index: "55"},
		{name: "with nobody", fields: []string{"with", "tybalt@example.net"},
			count: "0", complete: true},
		{name: "start and end", fields: []string{"start", "2025-05-01T10:10:00Z", "end", "2025-05-01T10:19:00Z"},
			want: span(10, 20, 1), count: "10", index: "0", complete: true},
		{name: "start with an offset and fraction", fields: []string{"start", "2025-05-01T12:15:00.000+02:00"}, rsm: []string{"max", "2"},
			want: []int{15, 16}, count: "105", index: "0"},
		{name: "end only, last page", fields: []string{"end", "2025-05-01T10:04:59Z"}, rsm: []string{"before", "-"},
			want: span(0, 5, 1), count: "5", index: "0", complete: true},
		{name: "range after the archive", fields: []string{"start", "2030-01-01T00:00:00Z"},
			count: "0", complete: true},
		{name: "after-id and before-id", fields: []string{"after-id", id(5), "before-id", id(9)},
			want: []int{6, 7, 8}, complete: true},
		{name: "after-id, paged", fields: []string{"after-id", id(100)}, rsm: []string{"max", "5"},
			want: span(101, 106, 1)},
		{name: "before-id pages forwards", fields: []string{"before-id", id(10)}, rsm: []string{"max", "4"},
			want: span(0, 4, 1)},
		{name: "form after-id and RSM after: the tighter wins", fields: []string{"after-id", id(10)}, rsm: []string{"max", "2", "after", id(5)},
			want: []int{11, 12}},
		{name: "RSM after and before", rsm: []string{"max", "2", "after", id(5), "before", id(10)},
			want: []int{8, 9}, count: "120"},
		{name: "ids", fields: []string{"ids", id(7), "ids", id(3), "ids", id(7)},
			want: []int{3, 7}, count: "2", index: "0", complete: true},
		{name: "ids and with", fields: []string{"ids", id(3), "ids", id(4), "with", "romeo@example.net"},
			want: []int{4}, count: "1", index: "0", complete: true},
		{name: "flip-page", rsm: []string{"max", "3"}, flip: true,
			want: []int{2, 1, 0}, count: "120", index: "0"},
		{name: "flip-page of the last page", rsm: []string{"max", "3", "before", "-"}, flip: true,
			want: []int{119, 118, 117}, count: "120", index: "117"},
		{name: "max 0 counts", rsm: []string{"max", "0"},
			count: "120"},
		{name: "max 0 of an empty range", fields: []string{"start", "2030-01-01T00:00:00Z"}, rsm: []string{"max", "0"},
			count: "0", complete: true},
		{name: "max 100000 is capped", rsm: []string{"max", "100000"},
			want: span(0, 100, 1), count: "120", index: "0", capped: "100"},
		{name: "capped but complete", rsm: []string{"max", "100000", "after", id(99)},
			want: span(100, 120, 1), count: "120", complete: true, capped: "100"},
		{name: "index 0", rsm: []string{"max", "1", "index", "0"},
			want: []int{0}, count: "120", index: "0"},
		{name: "empty values are no filter", fields: []string{"with", "", "start", ""}, rsm: []string{"max", "1"},
			want: []int{0}, count: "120", index: "0"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var extra []*stream.Element
			if tc.flip {
				extra = append(extra, stream.NewElement(NS, "flip-page"))
			}
			q := mamQuery(fmt.Sprint("t", i), tc.fields, tc.rsm, extra...)
			p, err := e.query(balcony, q)
			if err != nil {
				t.Fatal(err)
			}
			checkBodies(t, p, ids, tc.want)
			if len(tc.want) > 0 {
				lo, hi := slices.Min(tc.want), slices.Max(tc.want)
				if p.first != id(lo) || p.last != id(hi) {
					t.Errorf("first %s last %s, want %s %s (flipping changes the order only)", p.first, p.last, id(lo), id(hi))
				}
			} else if p.first != "" || p.last != "" {
				t.Errorf("empty page with first %q last %q", p.first, p.last)
			}
			if p.count != tc.count || p.index != tc.index || p.complete != tc.complete {
				t.Errorf("count %q index %q complete %v; want %q %q %v", p.count, p.index, p.complete, tc.count, tc.index, tc.complete)
			}
			c := p.fin.Child("capped", NSVerlauf)
			switch {
			case tc.capped == "" && c != nil:
				t.Errorf("uncapped query says %s", c)
			case tc.capped != "" && (c == nil || c.Attr("max") != tc.capped):
				t.Errorf("capped query: <fin/> %s, want <capped max='%s'/>", p.fin, tc.capped)
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, archive.Config{}, nil)
	user := e.login(juliet)
	ids := e.history(user, 10)
	unknown := idAt(minute(3), 999).String()
	before, err := e.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}

	dup := mamQuery("", []string{"with", "romeo@example.net"}, nil)
	dup.Child("x", NSData).AddChild(stream.NewElement(NSData, "field", "var", "with").
		AddChild(stream.NewElement(NSData, "value").AddText("mercutio@example.net")))
	formTyped := mamQuery("", []string{"with", "romeo@example.net"}, nil)
	formTyped.Child("x", NSData).SetAttr("type", "form")
	twoForms := mamQuery("", []string{}, nil)
	twoForms.AddChild(submitForm(NS))

	tests := []struct {
		name string
		to   string
		typ  string
		q    *stream.Element
		et   stanza.ErrorType
		cond stanza.Condition
	}{
		{"RSM after an unknown id", "", "set", mamQuery("", nil, []string{"after", unknown}), stanza.Cancel, stanza.ItemNotFound},
		{"RSM before an unknown id", "", "set", mamQuery("", nil, []string{"before", unknown}), stanza.Cancel, stanza.ItemNotFound},
		{"after-id unknown", "", "set", mamQuery("", []string{"after-id", unknown}, nil), stanza.Cancel, stanza.ItemNotFound},
		{"before-id not an id", "", "set", mamQuery("", []string{"before-id", "28482-98726-73623"}, nil), stanza.Cancel, stanza.ItemNotFound},
		{"ids with one unknown", "", "set", mamQuery("", []string{"ids", ids[1].String(), "ids", unknown}, nil), stanza.Cancel, stanza.ItemNotFound},
		{"another user's archive", "romeo@example.org", "set", mamQuery("", nil, nil), stanza.Cancel, stanza.Forbidden},
		{"the server's archive", "example.org", "set", mamQuery("", nil, nil), stanza.Cancel, stanza.Forbidden},
		{"another user's prefs", "romeo@example.org", "get", stream.NewElement(NS, "prefs"), stanza.Cancel, stanza.Forbidden},
		{"unknown field", "", "set", mamQuery("", []string{"{urn:example}free-text-search", "thou"}, nil), stanza.Cancel, stanza.FeatureNotImplemented},
		{"include-groupchat not advertised", "", "set", mamQuery("", []string{"include-groupchat", "false"}, nil), stanza.Cancel, stanza.FeatureNotImplemented},
		{"date without a zone", "", "set", mamQuery("", []string{"start", "2025-05-01T10:00:00"}, nil), stanza.Modify, stanza.BadRequest},
		{"date with a space", "", "set", mamQuery("", []string{"end", "2025-05-01 10:00:00Z"}, nil), stanza.Modify, stanza.BadRequest},
		{"date only", "", "set", mamQuery("", []string{"start", "2025-05-01"}, nil), stanza.Modify, stanza.BadRequest},
		{"end before start", "", "set", mamQuery("", []string{"start", "2025-05-02T00:00:00Z", "end", "2025-05-01T00:00:00Z"}, nil), stanza.Modify, stanza.BadRequest},
		{"two values for start", "", "set", mamQuery("", []string{"start", "2025-05-01T10:00:00Z", "start", "2025-05-01T11:00:00Z"}, nil), stanza.Modify, stanza.BadRequest},
		{"field twice", "", "set", dup, stanza.Modify, stanza.BadRequest},
		{"wrong FORM_TYPE", "", "set", mamQuery("", nil, nil, submitForm("urn:xmpp:mam:1", "with", "romeo@example.net")), stanza.Modify, stanza.BadRequest},
		{"no FORM_TYPE", "", "set", mamQuery("", nil, nil, submitForm("", "with", "romeo@example.net")), stanza.Modify, stanza.BadRequest},
		{"form not submitted", "", "set", formTyped, stanza.Modify, stanza.BadRequest},
		{"two forms", "", "set", twoForms, stanza.Modify, stanza.BadRequest},
		{"malformed with", "", "set", mamQuery("", []string{"with", "@example.net"}, nil), stanza.Modify, stanza.JIDMalformed},
		{"negative max", "", "set", mamQuery("", nil, []string{"max", "-1"}), stanza.Modify, stanza.BadRequest},
		{"max not a number", "", "set", mamQuery("", nil, []string{"max", "ten"}), stanza.Modify, stanza.BadRequest},
		{"empty after", "", "set", mamQuery("", nil, []string{"after", "-"}), stanza.Modify, stanza.BadRequest},
		{"max twice", "", "set", mamQuery("", nil, []string{"max", "1", "max", "2"}), stanza.Modify, stanza.BadRequest},
		{"index beyond 0", "", "set", mamQuery("", nil, []string{"max", "5", "index", "10"}), stanza.Cancel, stanza.FeatureNotImplemented},
		{"unknown element in the query", "", "set", mamQuery("", nil, nil, stream.NewElement(NS, "shuffle")), stanza.Modify, stanza.BadRequest},
		{"pubsub node", "", "set", func() *stream.Element { q := mamQuery("", nil, nil); q.SetAttr("node", "x"); return q }(), stanza.Cancel, stanza.FeatureNotImplemented},
		{"metadata set", "", "set", stream.NewElement(NS, "metadata"), stanza.Modify, stanza.BadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.iq(chamber, tc.to, tc.typ, tc.q)
			if sent := e.sink.take(chamber); len(sent) > 0 {
				t.Errorf("a failed request sent %d stanzas", len(sent))
			}
			if et, c := condition(t, err); et != tc.et || c != tc.cond {
				t.Fatalf("error %s/%s, want %s/%s (%v)", et, c, tc.et, tc.cond, err)
			}
		})
	}
	// Nothing was written by any of them.
	after, err := e.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("the log moved from %v to %v during failed requests", before, after)
	}
}

func TestLocked(t *testing.T) {
	e := newEnv(t, archive.Config{}, nil)
	user := e.login(juliet)
	e.history(user, 3)
	e.keys.Release(user) // the last session ended

	_, err := e.query(balcony, mamQuery("", nil, nil))
	if et, c := condition(t, err); et != stanza.Auth || c != stanza.NotAuthorized {
		t.Fatalf("locked archive: %s/%s, want auth/not-authorized", et, c)
	}
	// Prefs need no identity.
	if _, err := e.iq(balcony, "", "get", stream.NewElement(NS, "prefs")); err != nil {
		t.Fatalf("prefs of a locked user: %v", err)
	}

	// An account that never had keys cannot be unlocked either.
	_, err = e.query("romeo@example.org/orchard", mamQuery("", nil, nil))
	if et, c := condition(t, err); et != stanza.Auth || c != stanza.NotAuthorized {
		t.Fatalf("keyless account: %s/%s, want auth/not-authorized", et, c)
	}
}

// TestCorruptRecord flips a byte of one sealed record: that result comes as
// an error in its place, and the rest of the page is intact.
func TestCorruptRecord(t *testing.T) {
	seen := 0
	e := newEnv(t, archive.Config{}, func(s eventstore.Store) eventstore.Store {
		return flipStore{Store: s, seen: &seen, target: 3}
	})
	l, logged := logtest.NewNullLogger()
	var err error
	if e.svc, err = New(Config{Archive: e.arch, Router: e.sink, Log: logrus.NewEntry(l)}); err != nil {
		t.Fatal(err)
	}
	e.mux = router.NewMux()
	e.svc.Register(e.mux)
	user := e.login(juliet)
	ids := e.history(user, 5)

	p, err := e.query(balcony, mamQuery("c", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	// One warning, naming the record and nothing of its content.
	if es := logged.AllEntries(); len(es) != 1 || es[0].Level != logrus.WarnLevel || es[0].Data["archive_id"] != ids[2].String() {
		t.Fatalf("log entries %+v, want one warning about %s", es, ids[2])
	} else if line, _ := es[0].String(); strings.Contains(line, "msg ") || strings.Contains(line, "romeo") || strings.Contains(line, "mercutio") {
		t.Fatalf("the warning shows content: %s", line)
	}
	if !slices.Equal(p.ids, ids) || !p.complete || p.count != "5" {
		t.Fatalf("page %v complete %v count %s; want all 5 ids, complete", p.ids, p.complete, p.count)
	}
	for i, m := range p.msgs {
		if i == 2 {
			errEl := m.Child("error", "")
			if m.Attr("type") != "error" || errEl == nil || errEl.Child(string(stanza.InternalServerError), stanza.NSStanzas) == nil {
				t.Fatalf("damaged record forwarded as %s, want an error message", m)
			}
			if u := errEl.Child("unreadable", NSVerlauf); u == nil || u.Attr("reason") != "damaged" {
				t.Fatalf("damaged record without <unreadable reason='damaged'/>: %s", m)
			}
			if m.Child("body", "") != nil {
				t.Fatalf("damaged record has a body: %s", m)
			}
			if p.stamps[i] != formatDateTime(minute(2)) {
				t.Fatalf("damaged record stamped %s, want the time of its id %s", p.stamps[i], formatDateTime(minute(2)))
			}
			continue
		}
		if b := m.Child("body", ""); b == nil || b.Text() != fmt.Sprint("msg ", i) {
			t.Fatalf("record %d next to the damaged one: %s", i, m)
		}
	}
	// Paging past the damaged record works.
	p, err = e.query(balcony, mamQuery("", nil, []string{"after", ids[2].String()}))
	if err != nil || len(p.ids) != 2 || p.ids[0] != ids[3] {
		t.Fatalf("page after the damaged record: %v, %v", p.ids, err)
	}
}

func TestPrefs(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, archive.Config{}, nil)
	user := e.login(juliet)
	romeo, tybalt := jid.MustParse("romeo@example.net"), jid.MustParse("tybalt@example.net")

	get := func() *stream.Element {
		t.Helper()
		res, err := e.iq(balcony, "", "get", stream.NewElement(NS, "prefs"))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	prefs := func(def string, always, never []string) *stream.Element {
		el := stream.NewElement(NS, "prefs", "default", def)
		for _, l := range []struct {
			name string
			jids []string
		}{{"always", always}, {"never", never}} {
			list := stream.NewElement(NS, l.name)
			for _, j := range l.jids {
				list.AddChild(stream.NewElement(NS, "jid").AddText(j))
			}
			el.AddChild(list)
		}
		return el
	}

	if got, want := get(), prefs("never", nil, nil); !got.Equal(want) {
		t.Fatalf("a new account's prefs %s, want %s: no history by default", got, want)
	}
	set := prefs("roster", []string{"romeo@example.net"}, []string{"tybalt@example.net", "tybalt@example.net/sword"})
	res, err := e.iq(balcony, "", "set", set)
	if err != nil {
		t.Fatal(err)
	}
	want := prefs("roster", []string{"romeo@example.net"}, []string{"tybalt@example.net", "tybalt@example.net/sword"})
	if !res.Equal(want) {
		t.Fatalf("set answered %s, want %s", res, want)
	}
	if got := get(); !got.Equal(want) {
		t.Fatalf("prefs read back %s, want %s", got, want)
	}
	if ok, err := e.arch.Archives(ctx, user, romeo, false); err != nil || !ok {
		t.Fatalf("romeo is on the always list but not archived: %v", err)
	}
	if ok, err := e.arch.Archives(ctx, user, tybalt, true); err != nil || ok {
		t.Fatalf("tybalt is on the never list but archived: %v", err)
	}

	for _, tc := range []struct {
		name string
		el   *stream.Element
		cond stanza.Condition
	}{
		{"unknown default", prefs("sometimes", nil, nil), stanza.BadRequest},
		{"no default", stream.NewElement(NS, "prefs"), stanza.BadRequest},
		{"on both lists", prefs("always", []string{"romeo@example.net"}, []string{"romeo@example.net"}), stanza.BadRequest},
		{"malformed JID", prefs("always", []string{"@@"}, nil), stanza.JIDMalformed},
		{"empty JID", prefs("always", []string{""}, nil), stanza.JIDMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.iq(balcony, "", "set", tc.el)
			if et, c := condition(t, err); et != stanza.Modify || c != tc.cond {
				t.Fatalf("%s/%s, want modify/%s", et, c, tc.cond)
			}
			if got := get(); !got.Equal(want) {
				t.Fatalf("a refused set changed the prefs to %s", got)
			}
		})
	}
}

func TestQueryForm(t *testing.T) {
	e := newEnv(t, archive.Config{}, nil)
	res, err := e.iq(balcony, "", "get", stream.NewElement(NS, "query"))
	if err != nil {
		t.Fatal(err)
	}
	x := res.Child("x", NSData)
	if res.Name.Local != "query" || x == nil || x.Attr("type") != "form" {
		t.Fatalf("form answer %s", res)
	}
	types := map[string]string{}
	for f := range x.Children() {
		types[f.Attr("var")] = f.Attr("type")
		if f.Attr("var") == "FORM_TYPE" && f.Child("value", NSData).Text() != NS {
			t.Fatalf("FORM_TYPE %s", f)
		}
		if f.Attr("var") == "ids" {
			v := f.Child("validate", NSValidate)
			if v == nil || v.Child("open", NSValidate) == nil {
				t.Fatalf("ids without an open validate: %s", f)
			}
		}
		if f.Child("required", NSData) != nil {
			t.Fatalf("XEP-0313 forbids required fields: %s", f)
		}
	}
	want := map[string]string{"FORM_TYPE": "hidden", "with": "jid-single", "start": "text-single", "end": "text-single",
		"before-id": "text-single", "after-id": "text-single", "ids": "list-multi"}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("fields %v, want %v", types, want)
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, archive.Config{}, nil)
	user := e.login(juliet)
	md := stream.NewElement(NS, "metadata")
	res, err := e.iq(balcony, "", "get", md)
	if err != nil || len(slices.Collect(res.Children())) != 0 {
		t.Fatalf("metadata of an empty archive: %v, %v", res, err)
	}
	ids := e.history(user, 7)
	if res, err = e.iq(balcony, "", "get", md); err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		name string
		i    int
	}{{"start", 0}, {"end", 6}} {
		el := res.Child(side.name, NS)
		if el == nil || el.Attr("id") != ids[side.i].String() || el.Attr("timestamp") != formatDateTime(minute(side.i)) {
			t.Fatalf("metadata %s, want %s id %s at %s", res, side.name, ids[side.i], formatDateTime(minute(side.i)))
		}
	}
	if sent := e.sink.take(balcony); len(sent) > 0 {
		t.Fatalf("metadata sent %d messages", len(sent))
	}
}

func TestRegister(t *testing.T) {
	e := newEnv(t, archive.Config{}, nil)
	for _, f := range AccountFeatures() {
		if !slices.Contains(e.mux.Features(), f) {
			t.Errorf("feature %s not registered", f)
		}
	}
	for _, l := range []string{"query", "prefs", "metadata"} {
		if e.mux.Lookup(stream.Name{Space: NS, Local: l}) == nil {
			t.Errorf("no handler for <%s/>", l)
		}
	}
	if _, err := New(Config{Router: e.sink}); err == nil {
		t.Error("New without an archive")
	}
	if _, err := New(Config{Archive: e.arch}); err == nil {
		t.Error("New without a router")
	}
}

func TestDateTime(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"2010-07-10T23:08:25Z", true},
		{"2010-07-10T23:08:25.123Z", true},
		{"2010-07-10T23:08:25-06:00", true},
		{"2010-07-10T23:08:25", false},
		{"2010-07-10", false},
		{"23:08:25Z", false},
		{"1278803305", false},
	} {
		_, err := parseDateTime(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.in, err, tc.ok)
		}
	}
	if got := formatDateTime(minute(3).Add(4500 * 1e6)); got != "2025-05-01T10:03:04.500Z" {
		t.Errorf("format %s", got)
	}
}
