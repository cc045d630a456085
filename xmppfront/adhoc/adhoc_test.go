package adhoc

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/eventstore/keystore"
	"verlauf.im/verlauf/projections"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

const (
	server  = "example.org"
	juliet  = "juliet@example.org"
	balcony = "juliet@example.org/balcony"
	chamber = "juliet@example.org/chamber"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	arch  *archive.Service
	store *embedded.Store
	svc   *Service
	mux   *router.Mux
	clock *clock
}

// setup opens a real archive service (prefs live in the event log) and
// the commands service in front of it.
func setup(t *testing.T, maxSessions int) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	db, err := projections.OpenDB(filepath.Join(dir, "projections"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	arch, err := archive.New(archive.Config{Store: st, KeyStore: ks, Index: projections.NewArchive(db)}, archive.NewKeys(ks, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := arch.Close(ctx); err != nil {
			t.Error(err)
		}
		db.Close()
		ks.Close()
		st.Close()
	})
	f := &fixture{t: t, arch: arch, store: st, mux: router.NewMux(), clock: &clock{now: time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)}}
	if f.svc, err = New(Config{Domain: server, Prefs: arch, Clock: f.clock, MaxSessions: maxSessions}); err != nil {
		t.Fatal(err)
	}
	f.svc.Register(f.mux)
	return f
}

// do sends a command IQ from full to the server (or to).
func (f *fixture) do(from, to, typ string, cmd *stream.Element) (*stream.Element, error) {
	f.t.Helper()
	if to == "" {
		to = server
	}
	h := f.mux.Lookup(stream.Name{Space: NS, Local: "command"})
	if h == nil {
		f.t.Fatal("no command handler")
	}
	return h.HandleIQ(context.Background(), router.IQ{From: jid.MustParse(from), To: jid.MustParse(to), Type: typ, Payload: cmd})
}

func command(node, sid, action string, children ...*stream.Element) *stream.Element {
	c := stream.NewElement(NS, "command", "node", node)
	if sid != "" {
		c.SetAttr("sessionid", sid)
	}
	if action != "" {
		c.SetAttr("action", action)
	}
	for _, ch := range children {
		c.AddChild(ch)
	}
	return c
}

func submit(values ...string) *stream.Element {
	x := stream.NewElement(NSData, "x", "type", "submit")
	field := stream.NewElement(NSData, "field", "var", "history")
	for _, v := range values {
		field.AddChild(stream.NewElement(NSData, "value").AddText(v))
	}
	return x.AddChild(field)
}

// execute starts the history command and checks the form; it returns the
// session id and the value the form shows.
func (f *fixture) execute(from string) (string, string) {
	f.t.Helper()
	res, err := f.do(from, "", "set", command(NodeHistory, "", "execute"))
	if err != nil {
		f.t.Fatal(err)
	}
	sid := res.Attr("sessionid")
	if res.Attr("status") != "executing" || sid == "" || res.Attr("node") != NodeHistory {
		f.t.Fatalf("execute answered %s", res)
	}
	acts := res.Child("actions", NS)
	if acts == nil || acts.Attr("execute") != "complete" || acts.Child("complete", NS) == nil {
		f.t.Fatalf("execute without actions: %s", res)
	}
	x := res.Child("x", NSData)
	if x == nil || x.Attr("type") != "form" {
		f.t.Fatalf("execute without a form: %s", res)
	}
	for fl := range x.Children() {
		if fl.Attr("var") == "history" && fl.Attr("type") == "boolean" {
			return sid, fl.Child("value", NSData).Text()
		}
	}
	f.t.Fatalf("form without a boolean history field: %s", x)
	return "", ""
}

func (f *fixture) prefs() domain.ArchivePrefs {
	f.t.Helper()
	p, err := f.arch.Prefs(context.Background(), jid.MustParse(juliet))
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func specific(t *testing.T, err error) (stanza.ErrorType, stanza.Condition, string) {
	t.Helper()
	var se *stanza.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a stanza error", err)
	}
	app := ""
	if se.App != nil {
		if se.App.Name.Space != NS {
			t.Fatalf("application condition %s not in %s", se.App, NS)
		}
		app = se.App.Name.Local
	}
	return se.Type, se.Condition, app
}

func TestHistoryOnOff(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0)
	user := jid.MustParse(juliet)
	romeo, tybalt := jid.MustParse("romeo@example.net"), jid.MustParse("tybalt@example.net")

	for i, step := range []struct {
		value     string // submitted
		shown     string // the form's current value before
		def       domain.ArchiveMode
		archRomeo bool
		note      string
	}{
		{"1", "0", domain.ArchiveAlways, true, "on"},
		{"true", "1", domain.ArchiveAlways, true, "on"}, // again: nothing changes
		{"0", "1", domain.ArchiveNever, false, "off"},
		{"false", "0", domain.ArchiveNever, false, "off"},
		{"1", "0", domain.ArchiveAlways, true, "on"},
	} {
		sid, shown := f.execute(balcony)
		if shown != step.shown {
			t.Fatalf("step %d: form shows %q, want %q", i, shown, step.shown)
		}
		res, err := f.do(balcony, "", "set", command(NodeHistory, sid, "complete", submit(step.value)))
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		note := res.Child("note", NS)
		if res.Attr("status") != "completed" || res.Attr("sessionid") != sid || note == nil || note.Attr("type") != "info" ||
			!strings.Contains(note.Text(), "history is "+step.note) {
			t.Fatalf("step %d: completed with %s", i, res)
		}
		if p := f.prefs(); p.Default != step.def || !p.Chosen {
			t.Fatalf("step %d: prefs %+v, want default %s", i, p, step.def)
		}
		if ok, err := f.arch.Archives(ctx, user, romeo, false); err != nil || ok != step.archRomeo {
			t.Fatalf("step %d: romeo archived %v (%v), want %v", i, ok, err, step.archRomeo)
		}
		// The session is over.
		if _, err := f.do(balcony, "", "set", command(NodeHistory, sid, "complete", submit("1"))); err == nil {
			t.Fatalf("step %d: a completed session took another form", i)
		}
	}

	// Lists set through XEP-0441: on keeps both, off drops always but
	// keeps never.
	if _, err := f.arch.SetPrefs(ctx, user, domain.ArchiveRoster, []jid.JID{romeo}, []jid.JID{tybalt}); err != nil {
		t.Fatal(err)
	}
	sid, shown := f.execute(chamber)
	if shown != "0" {
		t.Fatalf("roster mode shown as %q", shown)
	}
	if _, err := f.do(chamber, "", "set", command(NodeHistory, sid, "execute", submit("1"))); err != nil {
		t.Fatal(err)
	}
	if p := f.prefs(); p.Default != domain.ArchiveAlways || !slices.Equal(p.Always, []string{"romeo@example.net"}) || !slices.Equal(p.Never, []string{"tybalt@example.net"}) {
		t.Fatalf("on with lists: %+v", p)
	}
	sid, _ = f.execute(chamber)
	if _, err := f.do(chamber, "", "set", command(NodeHistory, sid, "complete", submit("0"))); err != nil {
		t.Fatal(err)
	}
	if p := f.prefs(); p.Default != domain.ArchiveNever || len(p.Always) != 0 || !slices.Equal(p.Never, []string{"tybalt@example.net"}) {
		t.Fatalf("off with lists: %+v", p)
	}
	if ok, err := f.arch.Archives(ctx, user, romeo, true); err != nil || ok {
		t.Fatalf("history off still archives romeo (%v)", err)
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	f := setup(t, 0)
	head, err := f.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cancel := range []*stream.Element{
		command(NodeHistory, "", "cancel"),
		command(NodeHistory, "", "", stream.NewElement(NSData, "x", "type", "cancel")),
	} {
		sid, _ := f.execute(balcony)
		cancel.SetAttr("sessionid", sid)
		res, err := f.do(balcony, "", "set", cancel)
		if err != nil || res.Attr("status") != "canceled" || res.Attr("sessionid") != sid {
			t.Fatalf("cancel: %v, %v", res, err)
		}
		_, err = f.do(balcony, "", "set", command(NodeHistory, sid, "complete", submit("1")))
		if _, c, app := specific(t, err); c != stanza.BadRequest || app != "bad-sessionid" {
			t.Fatalf("complete after cancel: %v", err)
		}
	}
	if after, err := f.store.Head(ctx); err != nil || after != head {
		t.Fatalf("cancel wrote to the log: %v → %v (%v)", head, after, err)
	}
	if p := f.prefs(); p.Default != domain.ArchiveNever || p.Chosen {
		t.Fatalf("prefs after cancel: %+v", p)
	}
}

func TestCommandErrors(t *testing.T) {
	f := setup(t, 0)
	type want struct {
		et   stanza.ErrorType
		cond stanza.Condition
		app  string
	}
	for _, tc := range []struct {
		name      string
		from, to  string
		typ       string
		cmd       func(sid string) *stream.Element
		want      want
		sessionOK bool // the session can still complete after
	}{
		{"unknown node", balcony, "", "set", func(string) *stream.Element { return command("reboot", "", "execute") },
			want{stanza.Cancel, stanza.ItemNotFound, ""}, true},
		{"addressed to an account", balcony, juliet, "set", func(string) *stream.Element { return command(NodeHistory, "", "execute") },
			want{stanza.Cancel, stanza.ItemNotFound, ""}, true},
		{"get", balcony, "", "get", func(string) *stream.Element { return command(NodeHistory, "", "execute") },
			want{stanza.Modify, stanza.BadRequest, ""}, true},
		{"a remote user", "romeo@example.net/orchard", "", "set", func(string) *stream.Element { return command(NodeHistory, "", "execute") },
			want{stanza.Cancel, stanza.Forbidden, ""}, true},
		{"the server itself", server, "", "set", func(string) *stream.Element { return command(NodeHistory, "", "execute") },
			want{stanza.Cancel, stanza.Forbidden, ""}, true},
		{"next", balcony, "", "set", func(sid string) *stream.Element { return command(NodeHistory, sid, "next") },
			want{stanza.Modify, stanza.BadRequest, "bad-action"}, true},
		{"prev", balcony, "", "set", func(sid string) *stream.Element { return command(NodeHistory, sid, "prev") },
			want{stanza.Modify, stanza.BadRequest, "bad-action"}, true},
		{"unknown action", balcony, "", "set", func(sid string) *stream.Element { return command(NodeHistory, sid, "jump") },
			want{stanza.Modify, stanza.BadRequest, "malformed-action"}, true},
		{"complete without a session", balcony, "", "set", func(string) *stream.Element { return command(NodeHistory, "", "complete", submit("1")) },
			want{stanza.Modify, stanza.BadRequest, "bad-sessionid"}, true},
		{"unknown session", balcony, "", "set", func(string) *stream.Element { return command(NodeHistory, "nope", "complete", submit("1")) },
			want{stanza.Modify, stanza.BadRequest, "bad-sessionid"}, true},
		{"another resource's session", chamber, "", "set", func(sid string) *stream.Element { return command(NodeHistory, sid, "complete", submit("1")) },
			want{stanza.Modify, stanza.BadRequest, "bad-sessionid"}, true},
		{"no form", balcony, "", "set", func(sid string) *stream.Element { return command(NodeHistory, sid, "complete") },
			want{stanza.Modify, stanza.BadRequest, "bad-payload"}, true},
		{"not a boolean", balcony, "", "set", func(sid string) *stream.Element { return command(NodeHistory, sid, "complete", submit("yes")) },
			want{stanza.Modify, stanza.BadRequest, "bad-payload"}, true},
		{"no value", balcony, "", "set", func(sid string) *stream.Element { return command(NodeHistory, sid, "complete", submit()) },
			want{stanza.Modify, stanza.BadRequest, "bad-payload"}, true},
		{"two values", balcony, "", "set", func(sid string) *stream.Element { return command(NodeHistory, sid, "complete", submit("1", "0")) },
			want{stanza.Modify, stanza.BadRequest, "bad-payload"}, true},
		{"form not submitted", balcony, "", "set", func(sid string) *stream.Element {
			x := submit("1")
			x.SetAttr("type", "form")
			return command(NodeHistory, sid, "complete", x)
		}, want{stanza.Modify, stanza.BadRequest, "bad-payload"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sid, _ := f.execute(balcony)
			_, err := f.do(tc.from, tc.to, tc.typ, tc.cmd(sid))
			if et, c, app := specific(t, err); (want{et, c, app}) != tc.want {
				t.Fatalf("error %s/%s <%s/>, want %+v (%v)", et, c, app, tc.want, err)
			}
			if p := f.prefs(); p.Chosen {
				t.Fatalf("a failed command set prefs: %+v", p)
			}
			_, err = f.do(balcony, "", "set", command(NodeHistory, sid, "cancel"))
			if (err == nil) != tc.sessionOK {
				t.Fatalf("session usable after the error: %v, want %v", err, tc.sessionOK)
			}
		})
	}
}

func TestSessionExpiry(t *testing.T) {
	f := setup(t, 0)
	sid, _ := f.execute(balcony)
	f.clock.add(DefaultSessionTTL)
	_, err := f.do(balcony, "", "set", command(NodeHistory, sid, "complete", submit("1")))
	if et, c, app := specific(t, err); et != stanza.Cancel || c != stanza.NotAllowed || app != "session-expired" {
		t.Fatalf("expired session: %v", err)
	}
	if p := f.prefs(); p.Chosen {
		t.Fatalf("an expired session set prefs: %+v", p)
	}
	// Forgotten after saying so.
	_, err = f.do(balcony, "", "set", command(NodeHistory, sid, "complete", submit("1")))
	if _, _, app := specific(t, err); app != "bad-sessionid" {
		t.Fatalf("expired session again: %v", err)
	}
}

func TestMaxSessions(t *testing.T) {
	f := setup(t, 2)
	f.execute(balcony)
	f.execute(chamber)
	_, err := f.do(balcony, "", "set", command(NodeHistory, "", "execute"))
	if et, c, _ := specific(t, err); et != stanza.Wait || c != stanza.ResourceConstraint {
		t.Fatalf("third session: %v", err)
	}
	// Expired sessions make room.
	f.clock.add(DefaultSessionTTL)
	f.execute(balcony)
}

func TestDiscoNode(t *testing.T) {
	f := setup(t, 0)
	disco := func(from, to, ns, node string) (*stream.Element, bool) {
		t.Helper()
		res, ok, err := f.svc.DiscoNode(context.Background(), router.IQ{
			From: jid.MustParse(from), To: jid.MustParse(to), Type: "get",
			Payload: stream.NewElement(ns, "query", "node", node),
		}, node)
		if err != nil {
			t.Fatal(err)
		}
		return res, ok
	}
	res, ok := disco(balcony, server, NSItems, NS)
	want := stream.NewElement(NSItems, "query", "node", NS).
		AddChild(stream.NewElement(NSItems, "item", "jid", server, "node", NodeHistory, "name", historyName))
	if !ok || !res.Equal(want) {
		t.Fatalf("command list %s, want %s", res, want)
	}
	if res, ok := disco("romeo@example.net/orchard", server, NSItems, NS); !ok || len(res.Nodes) != 0 {
		t.Fatalf("command list for a remote user: %s", res)
	}
	res, ok = disco(balcony, server, NSInfo, NS)
	if id := res.Child("identity", NSInfo); !ok || id == nil || id.Attr("category") != "automation" || id.Attr("type") != "command-list" {
		t.Fatalf("info on the command list: %s", res)
	}
	res, ok = disco(balcony, server, NSInfo, NodeHistory)
	var features []string
	for c := range res.Children() {
		if c.Name.Local == "feature" {
			features = append(features, c.Attr("var"))
		}
	}
	if id := res.Child("identity", NSInfo); !ok || id == nil || id.Attr("type") != "command-node" || id.Attr("name") != historyName ||
		!slices.Equal(features, []string{NS, NSData}) {
		t.Fatalf("info on the command: %s", res)
	}
	if res, ok := disco(balcony, server, NSItems, NodeHistory); !ok || len(res.Nodes) != 0 {
		t.Fatalf("items of the command: %s", res)
	}
	for _, tc := range [][2]string{{server, "https://verlauf.im#ver"}, {server, ""}, {juliet, NS}} {
		if res, ok := disco(balcony, tc[0], NSItems, tc[1]); ok {
			t.Fatalf("node %q of %s answered: %s", tc[1], tc[0], res)
		}
	}
}

func TestRegisterAndNew(t *testing.T) {
	f := setup(t, 0)
	if !slices.Contains(f.mux.Features(), NS) {
		t.Fatalf("feature %s not registered", NS)
	}
	if _, err := New(Config{Prefs: f.arch}); err == nil {
		t.Error("New without a domain")
	}
	if _, err := New(Config{Domain: server}); err == nil {
		t.Error("New without prefs")
	}
}
