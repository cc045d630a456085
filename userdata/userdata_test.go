package userdata

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/projections"
)

const alicePW = "correct horse battery staple"

// populate gives alice one of everything and n archived messages.
func populate(t *testing.T, e *env, n int) jid.JID {
	t.Helper()
	ctx := context.Background()
	alice := mustJID(t, "alice@example.org")
	if err := e.accounts.Register(ctx, alice, alicePW); err != nil {
		t.Fatal(err)
	}
	e.unlock(alice, alicePW)
	bob, carol := mustJID(t, "bob@example.net"), mustJID(t, "carol@example.com")
	clock := domain.SystemClock{}
	exec := func(decide func(domain.Roster) (domain.RosterOutcome, error)) {
		_, _, err := eventstore.Execute(ctx, e.store, domain.RosterStream(alice), rosterAgg(0), func(r domain.Roster) ([]domain.Event, error) {
			out, err := decide(r)
			if err != nil {
				return nil, err
			}
			return domain.NewEvents(clock, out.Events...)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	exec(func(r domain.Roster) (domain.RosterOutcome, error) {
		return r.SetItem(bob, "Bob <the builder>", []string{"Work", "Friends"})
	})
	exec(func(r domain.Roster) (domain.RosterOutcome, error) { return r.Outbound(bob, domain.StanzaSubscribe) })
	exec(func(r domain.Roster) (domain.RosterOutcome, error) { return r.Inbound(bob, domain.StanzaSubscribed) })
	exec(func(r domain.Roster) (domain.RosterOutcome, error) { return r.Outbound(carol, domain.StanzaSubscribe) })
	exec(func(r domain.Roster) (domain.RosterOutcome, error) {
		return r.Inbound(mustJID(t, "eve@example.com"), domain.StanzaSubscribe)
	})
	must := func(_ any, _ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(eventstore.Execute(ctx, e.store, domain.VCardStream(alice), vcardAgg, func(v domain.VCard) ([]domain.Event, error) {
		ps, err := v.Set(`<vCard xmlns='vcard-temp'><FN>Alice &amp; Co</FN></vCard>`, 0)
		if err != nil {
			return nil, err
		}
		return domain.NewEvents(clock, ps...)
	}))
	must(eventstore.Execute(ctx, e.store, domain.PrivateStream(alice), privateAgg, func(p domain.PrivateStorage) ([]domain.Event, error) {
		ps, err := p.Set(domain.PrivateLimits{}, domain.PrivateItem{Key: domain.PrivateKey{Name: "storage", Namespace: "storage:bookmarks"}, XML: `<storage xmlns='storage:bookmarks'><conference jid='room@muc.example.org'/></storage>`})
		if err != nil {
			return nil, err
		}
		return domain.NewEvents(clock, ps...)
	}))
	must(eventstore.Execute(ctx, e.store, domain.BlocklistStream(alice), blocklistAgg(0), func(b domain.Blocklist) ([]domain.Event, error) {
		ps, err := b.Block(mustJID(t, "spam@example.com"), mustJID(t, "spammers.example"))
		if err != nil {
			return nil, err
		}
		return domain.NewEvents(clock, ps...)
	}))
	if _, err := e.archive.SetPrefs(ctx, alice, domain.ArchiveAlways, []jid.JID{bob}, []jid.JID{carol}); err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{"are you there?", "hello again"} {
		if _, err := e.archive.Queue(ctx, alice, chat(withRes(carol, "x"), alice, "q"+string(rune('0'+i)), body)); err != nil {
			t.Fatal(err)
		}
	}
	e.fill(alice, n, time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC))
	return alice
}

func export(t testing.TB, e *env, user jid.JID, f Format, opts ExportOptions) ([]byte, Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := Export(context.Background(), &buf, e.deps(), user, f, opts)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

func TestRoundTrip(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	src := newEnv(t)
	alice := populate(t, src, n)
	first, m := export(t, src, alice, XEP0227, ExportOptions{})
	want := map[string]int{KindAccount: 1, KindRoster: 2, KindRosterRequest: 1, KindVCard: 1, KindPrivate: 1, KindBlocklist: 2, KindPrefs: 1, KindOffline: 2, KindMessage: n}
	for k, v := range want {
		if m.Counts[k] != v {
			t.Errorf("manifest counts %s = %d, want %d (all: %v)", k, m.Counts[k], v, m.Counts)
		}
	}
	if got, err := Verify(bytes.NewReader(first)); err != nil || got.SHA256 != m.SHA256 {
		t.Fatalf("Verify: %v (%+v)", err, got)
	}
	if bytes.Contains(first, []byte("scram-credentials")) || bytes.Contains(first, []byte("stored-key")) {
		t.Error("a user's export carries credentials")
	}
	// The offline queue is still there after the export.
	if p, err := src.archive.Pending(context.Background(), alice); err != nil || p != 2 {
		t.Errorf("after export: %d pending (%v), want 2", p, err)
	}

	dst := newEnv(t)
	rep, err := Import(context.Background(), bytes.NewReader(first), dst.deps(), ImportOptions{Password: alicePW})
	// The file has no credentials: the password registers the account.
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Users[0].Created || rep.Users[0].Counts[KindMessage] != n {
		t.Errorf("report %+v", rep.Users[0])
	}
	dst.unlock(alice, alicePW)
	second, m2 := export(t, dst, alice, XEP0227, ExportOptions{})
	if !bytes.Equal(first, second) {
		a, b := strings.Split(string(first), "\n"), strings.Split(string(second), "\n")
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("exports differ at line %d:\n%s\n%s", i+1, a[i], b[i])
			}
		}
		t.Fatalf("exports differ in length: %d and %d lines", len(a), len(b))
	}
	if m2.SHA256 != m.SHA256 {
		t.Error("manifests differ")
	}
	// MAM finds the imported history by partner once a login has indexed
	// it (the import ran without the user's session).
	if _, err := dst.archive.IndexPending(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	page, err := dst.archive.Query(context.Background(), alice, archive.Query{With: mustJID(t, "bob@example.net"), Max: 5})
	if err != nil || page.Count != (n+2)/3 {
		t.Errorf("with query: count %d (%v), want %d", page.Count, err, (n+2)/3)
	}
}

func TestExportJSONLines(t *testing.T) {
	e := newEnv(t)
	alice := populate(t, e, 30)
	out, m := export(t, e, alice, JSONLines, ExportOptions{IncludeCredentials: true, PageSize: 7})
	if _, err := Verify(bytes.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	var last map[string]any
	for sc.Scan() {
		last = nil
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		kinds[last["kind"].(string)]++
	}
	if kinds[KindMessage] != 30 || kinds["manifest"] != 1 || kinds[KindRoster] != 2 || last["kind"] != "manifest" {
		t.Errorf("kinds %v, last %v", kinds, last["kind"])
	}
	if m.Counts[KindMessage] != 30 || !bytes.Contains(out, []byte(`"credentials":[{"hash":"SHA-1"`)) {
		t.Errorf("manifest %v; credentials missing with IncludeCredentials", m.Counts)
	}
	// A damaged file fails the check.
	bad := bytes.Replace(out, []byte("reply 1"), []byte("reply 9"), 1)
	if _, err := Verify(bytes.NewReader(bad)); !errors.Is(err, ErrVerify) {
		t.Errorf("Verify of a changed file: %v", err)
	}
	if _, err := Verify(bytes.NewReader(out[:len(out)/2])); !errors.Is(err, ErrVerify) {
		t.Errorf("Verify of a truncated file: %v", err)
	}
}

func TestImportProsody(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f, err := os.Open("testdata/prosody.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Import(ctx, f, e.deps(), ImportOptions{Password: "pencil"})
	if err != nil {
		t.Fatal(err)
	}
	juliet := mustJID(t, "juliet@example.org")
	u := rep.Users[0]
	if u.JID != juliet.String() || u.Counts[KindRoster] != 3 || u.Counts[KindMessage] != 2 || u.Skipped["pubsub"] != 1 || u.Interim {
		t.Errorf("report %+v", u)
	}
	// The user keeps the password the file's verifier was made from.
	if err := e.accounts.VerifyPassword(ctx, juliet, "pencil"); err != nil {
		t.Errorf("login with the old password: %v", err)
	}
	e.unlock(juliet, "pencil")
	out, m := export(t, e, juliet, XEP0227, ExportOptions{})
	for _, want := range []string{
		`<item jid='romeo@montague.example' name='Romeo' subscription='both'><group>Friends</group><group>Lovers</group></item>`,
		`<item jid='tybalt@capulet.example' subscription='none' ask='subscribe'/>`,
		`from='benvolio@montague.example'`,
		`<FN>Juliet Capulet</FN>`,
		`<conference jid='balcony@conference.example.org' autojoin='true'/>`,
		`v:with='romeo@montague.example' v:dir='in'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-02-14T21:00:00Z'/>`,
		`v:dir='out'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-02-14T21:00:05.25Z'/>`,
		`<body>Wherefore art thou?</body>`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("export lacks %s\n%s", want, out)
		}
	}
	if m.Counts[KindMessage] != 2 {
		t.Errorf("counts %v", m.Counts)
	}
	// The ids drawn for Prosody's ids carry the message's time, so MAM's
	// time filter finds them.
	page, err := e.archive.Query(ctx, juliet, archive.Query{Start: time.Date(2024, 2, 14, 21, 0, 1, 0, time.UTC)})
	if err != nil || len(page.Messages) != 1 || !strings.Contains(string(page.Messages[0].Stanza), "Wherefore") {
		t.Errorf("time query: %v %+v", err, page)
	}
}

func TestImportEjabberd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f, err := os.Open("testdata/ejabberd.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	open := func(href string) (ReadCloser, error) {
		if filepath.Base(href) != href {
			return nil, errors.New("only files beside the main file")
		}
		return os.Open(filepath.Join("testdata", href))
	}
	rep, err := Import(ctx, f, e.deps(), ImportOptions{Include: open})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Users) != 2 {
		t.Fatalf("%d users", len(rep.Users))
	}
	romeo, mercutio := mustJID(t, "romeo@example.org"), mustJID(t, "mercutio@example.org")
	// A SCRAM verifier without the password: interim keys held by the
	// server, none handed out, and the password still works.
	if !rep.Users[0].Interim || rep.Users[1].Interim {
		t.Errorf("interim: %v / %v", rep.Users[0].Interim, rep.Users[1].Interim)
	}
	if err := e.accounts.VerifyPassword(ctx, romeo, "pencil"); err != nil {
		t.Errorf("romeo: %v", err)
	}
	if err := e.accounts.VerifyPassword(ctx, mercutio, "queen-mab"); err != nil {
		t.Errorf("mercutio: %v", err)
	}
	// Romeo's first login reseals and unlocks: the offline message is
	// readable.
	e.login(romeo, "pencil")
	out, m := export(t, e, romeo, XEP0227, ExportOptions{})
	for _, want := range []string{
		`<item jid='juliet@example.org' name='Juliet' subscription='both'><group>Capulets</group></item>`,
		`from='paris@verona.example'`,
		`<FN>Romeo Montague</FN>`,
		`<blocklist xmlns='urn:xmpp:blocking'><item jid='tybalt@capulet.example'/></blocklist>`,
		`stamp='2024-03-01T10:00:00.000000Z'`,
		`<body>A plague o' both your houses!</body>`,
		`<exodus xmlns='exodus:prefs'><defaultnick>Romeo</defaultnick></exodus>`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("export lacks %s\n%s", want, out)
		}
	}
	if m.Counts[KindOffline] != 1 || m.Counts[KindBlocklist] != 1 {
		t.Errorf("counts %v", m.Counts)
	}
	// Without an opener, includes are refused.
	f2, _ := os.Open("testdata/ejabberd.xml")
	defer f2.Close()
	if _, err := Import(ctx, f2, newEnv(t).deps(), ImportOptions{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("include without opener: %v", err)
	}
}

// repeat is a reader of n bytes of b, made on the fly.
type repeat struct {
	b byte
	n int64
}

func (r *repeat) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), r.n)
	for i := range p[:k] {
		p[i] = r.b
	}
	r.n -= k
	return int(k), nil
}

func TestImportRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	const head = "<?xml version='1.0'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='example.org'>\n<user name='mallory' password='pw'>\n"
	const foot = "</user>\n</host>\n</server-data>\n"
	good := head + "<query xmlns='jabber:iq:roster'><item jid='a@example.com' subscription='both'/></query>\n" + foot
	laughs := `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'><user name='m'><vCard xmlns='vcard-temp'><FN>&lol3;</FN></vCard></user></host></server-data>`
	tests := []struct {
		name    string
		in      io.Reader
		lim     Limits
		element string
		line    int
		text    string
	}{
		{"truncated", strings.NewReader(good[:len(good)-30]), Limits{}, "{urn:xmpp:pie:0}user", 6, "unexpected EOF"},
		{"billion laughs", strings.NewReader(laughs), Limits{}, "", 6, "DTD"},
		{"doctype", strings.NewReader("<?xml version='1.0'?>\n<!DOCTYPE server-data SYSTEM 'file:///etc/passwd'>\n<server-data xmlns='urn:xmpp:pie:0'/>"), Limits{}, "", 2, "DTD"},
		{"undefined entity", strings.NewReader(head + "<vCard xmlns='vcard-temp'><FN>&xxe;</FN></vCard>\n" + foot), Limits{}, "{vcard-temp}FN", 5, "not well-formed"},
		{"oversized element", io.MultiReader(strings.NewReader(head+"<vCard xmlns='vcard-temp'><PHOTO><BINVAL>"), &repeat{'A', 2 << 30}), Limits{MaxElementBytes: 64 << 10}, "{vcard-temp}BINVAL", 5, "too large"},
		{"oversized message", io.MultiReader(strings.NewReader(head+"<archive xmlns='urn:xmpp:pie:0#mam'>\n<result xmlns='urn:xmpp:mam:2' id='1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>"), &repeat{'A', 1 << 20}), Limits{}, "{jabber:client}body", 6, "too large"},
		{"wrong nesting", strings.NewReader("<server-data xmlns='urn:xmpp:pie:0'>\n<user name='x'/>\n</server-data>"), Limits{}, "{urn:xmpp:pie:0}user", 2, "unexpected element"},
		{"mismatched end tag", strings.NewReader(head + "<vCard xmlns='vcard-temp'><FN>x</NICKNAME></vCard>\n" + foot), Limits{}, "{vcard-temp}FN", 5, "not well-formed"},
		{"deep nesting", strings.NewReader(head + "<vCard xmlns='vcard-temp'>" + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + "</vCard>" + foot), Limits{}, "{vcard-temp}a", 5, "deeper"},
		{"bad roster item", strings.NewReader(head + "\n<query xmlns='jabber:iq:roster'><item jid='a@example.com/res'/></query>\n" + foot), Limits{}, "{jabber:iq:roster}query", 6, "bare JID"},
		{"bad stamp", strings.NewReader(head + "<archive xmlns='urn:xmpp:pie:0#mam'><result xmlns='urn:xmpp:mam:2' id='1'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='yesterday'/><message xmlns='jabber:client' from='a@example.com' to='mallory@example.org'/></forwarded></result></archive>" + foot), Limits{}, "{urn:xmpp:pie:0#mam}archive", 5, "stamp"},
		{"processing instruction", strings.NewReader(head + "<?php evil() ?>" + foot), Limits{}, "{urn:xmpp:pie:0}user", 5, "processing instruction"},
		{"not pie", strings.NewReader("<server-data xmlns='urn:example'/>"), Limits{}, "{urn:example}server-data", 1, "not an XEP-0227"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			// One good user first: it must not be written either.
			before := e.head()
			_, err := Import(ctx, tc.in, e.deps(), ImportOptions{Limits: tc.lim})
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want a FileError", err)
			}
			if fe.Element != tc.element || (tc.line != 0 && fe.Line != tc.line) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %v (element %q line %d), want element %q line %d and %q", err, fe.Element, fe.Line, tc.element, tc.line, tc.text)
			}
			if after := e.head(); after != before {
				t.Errorf("the store moved from %v to %v", before, after)
			}
		})
	}
}

// A file whose second user is bad writes nothing of the first.
func TestImportAllOrNothing(t *testing.T) {
	e := newEnv(t)
	in := "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>" +
		"<user name='one' password='pw1'><query xmlns='jabber:iq:roster'><item jid='a@example.com' subscription='both'/></query></user>\n" +
		"<user name='two' password='pw2'><query xmlns='jabber:iq:roster'><item jid='a@example.com' subscription='sideways'/></query></user>" +
		"</host></server-data>"
	before := e.head()
	_, err := Import(context.Background(), strings.NewReader(in), e.deps(), ImportOptions{})
	var fe *FileError
	if !errors.As(err, &fe) || fe.Line != 2 || !strings.Contains(err.Error(), "sideways") {
		t.Fatalf("err = %v", err)
	}
	if e.head() != before {
		t.Error("something was written")
	}
	// An account that exists is refused before anything is written.
	if err := e.accounts.Register(context.Background(), mustJID(t, "two@example.org"), "x"); err != nil {
		t.Fatal(err)
	}
	before = e.head()
	in = strings.Replace(in, "sideways", "none", 1)
	if _, err := Import(context.Background(), strings.NewReader(in), e.deps(), ImportOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	if e.head() != before {
		t.Error("something was written")
	}
}

func TestImportWrongPassword(t *testing.T) {
	e := newEnv(t)
	f, err := os.Open("testdata/prosody.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := e.head()
	if _, err := Import(context.Background(), f, e.deps(), ImportOptions{Password: "not pencil"}); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("err = %v", err)
	}
	if e.head() != before {
		t.Error("something was written")
	}
}

// TestImportSearchableWhenDone: the index of an import trails its appends,
// and Import returns only when the index has caught up, so a count read
// straight from the index (which, unlike a MAM query, does not wait)
// holds every imported message.
func TestImportSearchableWhenDone(t *testing.T) {
	const n = 5000
	e := newEnv(t)
	var b strings.Builder
	b.WriteString("<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'><user name='alice' password='pw'>" +
		"<archive xmlns='urn:xmpp:pie:0#mam'>")
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		fmt.Fprintf(&b, "<result xmlns='urn:xmpp:mam:2'><forwarded xmlns='urn:xmpp:forward:0'>"+
			"<delay xmlns='urn:xmpp:delay' stamp='%s'/><message xmlns='jabber:client' from='alice@example.org/a' "+
			"to='bob@example.com' type='chat'><body>%d</body></message></forwarded></result>",
			at.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i)
	}
	b.WriteString("</archive></user></host></server-data>")
	ctx := context.Background()
	// A progress display hears of every batch, then of the wait.
	var calls []string
	opts := ImportOptions{
		Progress: func(user string, messages int) { calls = append(calls, fmt.Sprintf("%s %d", user, messages)) },
		Indexing: func(user string) { calls = append(calls, "indexing "+user) },
	}
	if _, err := Import(ctx, strings.NewReader(b.String()), e.deps(), opts); err != nil {
		t.Fatal(err)
	}
	got, err := e.index.Count(ctx, mustJID(t, "alice@example.org"), projections.ArchiveRange{})
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("the index holds %d of %d imported messages when Import returns", got, n)
	}
	want := []string{"alice@example.org 1024", "alice@example.org 2048", "alice@example.org 3072",
		"alice@example.org 4096", "alice@example.org 5000", "indexing alice@example.org"}
	if !slices.Equal(calls, want) {
		t.Errorf("progress calls %q, want %q", calls, want)
	}
}
