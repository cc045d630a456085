package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"mellium.im/sasl"

	"verlauf.im/verlauf/tests/testserver"
	"verlauf.im/verlauf/tests/xmppclient"
	"verlauf.im/verlauf/xmppfront/stream"
)

func isMessage(id string) func(*stream.Element) bool {
	return func(e *stream.Element) bool { return e.Name.Local == "message" && e.Attr("id") == id }
}

func withForm(jid string) string {
	return "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + xmppclient.NSMAM +
		"</value></field><field var='with'><value>" + jid + "</value></field></x>"
}

// A conversation held on the phone can be read later on the PC: the issue's
// first test, with mellium.im/xmpp against the real binary.
func TestHistorySyncsAcrossDevices(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	alice, bob, carol := addUser(t, s, "alice"), addUser(t, s, "bob"), addUser(t, s, "carol")
	phone := login(t, s, alice, "", sasl.ScramSha256)
	phone.HistoryOn(t)
	b := login(t, s, bob, "", sasl.ScramSha256)
	c := login(t, s, carol, "", sasl.ScramSha256)
	for _, cl := range []*xmppclient.Client{phone, b, c} {
		cl.Send(t, "<presence/>")
	}
	// Six messages with bob, two with carol.
	var want []string
	for i := range 6 {
		body := fmt.Sprintf("bob line %d", i)
		if i%2 == 0 {
			phone.Send(t, fmt.Sprintf("<message to='%s' type='chat' id='b%d'><body>%s</body></message>", bob, i, body))
			got := b.Expect(t, "message", isMessage(fmt.Sprintf("b%d", i)))
			if got.Child("stanza-id", xmppclient.NSSID) != nil {
				t.Fatalf("bob keeps no history, yet his copy has a stanza-id: %s", got)
			}
		} else {
			b.Send(t, fmt.Sprintf("<message to='%s' type='chat' id='b%d'><body>%s</body></message>", alice, i, body))
			got := phone.Expect(t, "message", isMessage(fmt.Sprintf("b%d", i)))
			if sid := got.Child("stanza-id", xmppclient.NSSID); sid == nil || sid.Attr("by") != alice || sid.Attr("id") == "" {
				t.Fatalf("alice's copy lacks her stanza-id: %s", got)
			}
		}
		want = append(want, body)
	}
	for i := range 2 {
		c.Send(t, fmt.Sprintf("<message to='%s' type='chat' id='c%d'><body>carol line %d</body></message>", alice, i, i))
		phone.Expect(t, "message", isMessage(fmt.Sprintf("c%d", i)))
	}

	// The PC arrives later and pages through everything.
	pc := login(t, s, alice, "", sasl.ScramSha256)
	all, fin := pc.MAMQuery(t, "all", "", "")
	if len(all) != 8 || fin.Attr("complete") != "true" {
		t.Fatalf("whole history: %q (fin %s)", all, fin)
	}
	for i, w := range want {
		if all[i] != w {
			t.Fatalf("history %q, want bob's lines first in order %q", all, want)
		}
	}
	// Forwards in pages of three.
	page1, fin1 := pc.MAMQuery(t, "f1", "", "<set xmlns='http://jabber.org/protocol/rsm'><max>3</max></set>")
	last := fin1.Child("set", "http://jabber.org/protocol/rsm").Child("last", "").Text()
	page2, _ := pc.MAMQuery(t, "f2", "", "<set xmlns='http://jabber.org/protocol/rsm'><max>3</max><after>"+last+"</after></set>")
	if strings.Join(page1, "|") != strings.Join(all[:3], "|") || strings.Join(page2, "|") != strings.Join(all[3:6], "|") {
		t.Fatalf("forward pages %q %q, want %q", page1, page2, all[:6])
	}
	// Backwards from the end.
	back, _ := pc.MAMQuery(t, "b1", "", "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>")
	if strings.Join(back, "|") != "carol line 0|carol line 1" {
		t.Fatalf("last page %q", back)
	}
	// Only the conversation with bob.
	withBob, _ := pc.MAMQuery(t, "w", withForm(bob), "")
	if strings.Join(withBob, "|") != strings.Join(want, "|") {
		t.Fatalf("with bob: %q, want %q", withBob, want)
	}

	// Carbons: the PC sees what the phone sends and receives, live.
	pc.Send(t, "<iq type='set' id='cb'><enable xmlns='"+xmppclient.NSCarbons+"'/></iq>")
	pc.ExpectID(t, "cb")
	pc.Send(t, "<presence/>")
	phone.Send(t, "<message to='"+bob+"' type='chat' id='live1'><body>sent from the phone</body></message>")
	sent := pc.Expect(t, "sent carbon", func(e *stream.Element) bool { return e.Child("sent", xmppclient.NSCarbons) != nil })
	if fwd := sent.Child("sent", xmppclient.NSCarbons).Child("forwarded", xmppclient.NSForward).Child("message", "jabber:client"); fwd.Child("body", "jabber:client").Text() != "sent from the phone" {
		t.Fatalf("sent carbon: %s", sent)
	}
	b.Send(t, "<message to='"+phone.JID.String()+"' type='chat' id='live2'><body>to the phone</body></message>")
	pc.Expect(t, "received carbon", func(e *stream.Element) bool { return e.Child("received", xmppclient.NSCarbons) != nil })
	// <private/> keeps a message out of carbons.
	phone.Send(t, "<message to='"+bob+"' type='chat' id='priv'><body>private one</body><private xmlns='"+xmppclient.NSCarbons+"'/></message>")
	b.Expect(t, "private message", isMessage("priv"))
	phone.Send(t, "<message to='"+bob+"' type='chat' id='after'><body>after private</body></message>")
	next := pc.Expect(t, "next carbon", func(e *stream.Element) bool { return e.Child("sent", xmppclient.NSCarbons) != nil })
	if strings.Contains(next.String(), "private one") {
		t.Fatalf("a <private/> message was carbon-copied: %s", next)
	}

	// OTR reaches an online recipient and is never archived.
	b.Send(t, "<message to='"+alice+"' type='chat' id='otr'><body>?OTR:AAMDsecretotrpayload.</body></message>")
	phone.Expect(t, "OTR message", isMessage("otr"))
	hist, _ := pc.MAMQuery(t, "after-otr", withForm(bob), "")
	for _, h := range hist {
		if strings.Contains(h, "?OTR") {
			t.Fatalf("an OTR message is in the archive: %q", hist)
		}
	}
}

// Offline messages wait, sealed, survive a restart, and arrive with a delay
// at the next login; OTR to an offline user is refused, not queued.
func TestOfflineDelivery(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	b := login(t, s, bob, "", sasl.ScramSha256)
	b.Send(t, "<presence/>")
	b.Send(t, "<message to='"+alice+"' type='chat' id='o1'><body>while you were away</body></message>")
	b.Send(t, "<message to='"+alice+"' type='chat' id='otr'><body>?OTRv23?</body></message>")
	bounce := b.Expect(t, "OTR bounce", isMessage("otr"))
	if bounce.Attr("type") != "error" || bounce.Child("error", "").Child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas") == nil {
		t.Fatalf("OTR to an offline user: %s, want service-unavailable", bounce)
	}
	b.Send(t, "<message to='"+alice+"' type='chat' id='o2'><body>second one</body></message>")
	// Let the queue reach the disk, then restart.
	pingServer(t, b, s.Domain, "sync")
	s.Restart()

	a := login(t, s, alice, "", sasl.ScramSha256)
	a.Send(t, "<presence/>")
	for _, id := range []string{"o1", "o2"} {
		m := a.Expect(t, "offline message", isMessage(id))
		if d := m.Child("delay", xmppclient.NSDelay); d == nil || d.Attr("stamp") == "" {
			t.Fatalf("offline message without delay: %s", m)
		}
	}
	// Delivered means forgotten: a second login gets nothing again.
	a.S.Close()
	a2 := login(t, s, alice, "", sasl.ScramSha256)
	a2.Send(t, "<presence/>")
	pingServer(t, a2, s.Domain, "settle")
	select {
	case el := <-a2.In:
		if el.Name.Local == "message" {
			t.Fatalf("an offline message was delivered twice: %s", el)
		}
	default:
	}
}

// needles are the secrets in every encoding the project uses.
func needles(secrets ...string) map[string][]byte {
	out := map[string][]byte{}
	for _, s := range secrets {
		out[s+" raw"] = []byte(s)
		out[s+" hex"] = []byte(hex.EncodeToString([]byte(s)))
		out[s+" HEX"] = []byte(strings.ToUpper(hex.EncodeToString([]byte(s))))
		for i := range 3 { // base64 at each alignment
			enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", i) + s))
			out[fmt.Sprintf("%s base64/%d", s, i)] = []byte(enc[(i*4+2)/3+1 : len(enc)-4])
		}
	}
	return out
}

func scanBytes(where string, b []byte, ns map[string][]byte) []string {
	var found []string
	for name, n := range ns {
		if len(n) > 0 && bytes.Contains(b, n) {
			found = append(found, name+" in "+where)
		}
	}
	return found
}

// The at-rest test: with history on and messages waiting offline, nothing
// in the data directory or the server's log holds a body, and the archive
// data holds no partner's JID either, in raw, hex or base64.
func TestAtRest(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	carol := addUser(t, s, "carol") // offline throughout
	words := []string{"zyxwvutsrqponmlk", "quintessentialpapaya", "blorptangerine"}
	a := login(t, s, alice, "", sasl.ScramSha256)
	a.HistoryOn(t)
	b := login(t, s, bob, "", sasl.ScramSha256)
	b.HistoryOn(t)
	a.Send(t, "<presence/>")
	b.Send(t, "<presence/>")
	a.Send(t, "<message to='"+bob+"' type='chat' id='w0'><body>"+words[0]+"</body></message>")
	b.Expect(t, "w0", isMessage("w0"))
	b.Send(t, "<message to='"+alice+"' type='chat' id='w1'><body>"+words[1]+"</body></message>")
	a.Expect(t, "w1", isMessage("w1"))
	a.Send(t, "<message to='"+carol+"' type='chat' id='w2'><body>"+words[2]+"</body></message>")
	pingServer(t, a, s.Domain, "sync")
	a.S.Close()
	b.S.Close()
	s.Stop()

	data := filepath.Join(s.Dir, "data")
	bodies := needles(words...)
	var found []string
	// Every byte of every file, and the server's own log (at debug level).
	filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found = append(found, scanBytes(p, b, bodies)...)
		return nil
	})
	logBytes, _ := os.ReadFile(s.LogPath)
	found = append(found, scanBytes("the server log", logBytes, bodies)...)
	// Every key and value through the engine, for the bodies and for the
	// partners' JIDs. Records name their owner (stream names, keys), by
	// design; a partner is any other user. The roster and the accounts
	// name contacts by necessity and are outside the promise
	// (ARCHITECTURE.md), so only the archive's own data is read for JIDs.
	users := []string{alice, bob, carol}
	total := 0
	check := func(where string, owner string, blobs ...[]byte) {
		total++
		ns := needles(words...)
		for _, u := range users {
			if u != owner {
				for k, v := range needles(u) {
					ns[k] = v
				}
			}
		}
		for _, b := range blobs {
			found = append(found, scanBytes(where, b, ns)...)
		}
	}
	eachKV(t, filepath.Join(data, "events"), []byte("l/"), func(k, v []byte) {
		stream, rest, ok := recordStream(v)
		if !ok {
			found = append(found, fmt.Sprintf("undecodable log record %x", k))
			return
		}
		if concern, owner, _ := strings.Cut(stream, "-"); concern == "archive" || concern == "offline" {
			check("log record of "+stream, owner, rest)
		}
	})
	eachKV(t, filepath.Join(data, "projections"), []byte("d/archive\x00"), func(k, v []byte) {
		owner, key := ownerOf(users, k[len("d/archive\x00"):])
		check("MAM index", owner, key, v)
	})
	eachKV(t, filepath.Join(data, "keys"), nil, func(k, v []byte) {
		owner, key := ownerOf(users, k)
		check("key store", owner, key, v)
	})
	if total == 0 {
		t.Fatal("scanned no archive data at all: the test would pass vacuously")
	}
	if len(found) > 0 {
		t.Fatalf("secrets at rest:\n%s", strings.Join(found, "\n"))
	}

	// And the user's login opens it all again.
	s.Restart()
	a = login(t, s, alice, "", sasl.ScramSha256)
	hist, _ := a.MAMQuery(t, "q", "", "")
	if strings.Join(hist, "|") != words[0]+"|"+words[1]+"|"+words[2] {
		t.Fatalf("after login the history reads %q", hist)
	}
	c := login(t, s, carol, "", sasl.ScramSha256)
	c.Send(t, "<presence/>")
	if m := c.Expect(t, "offline message", isMessage("w2")); m.Child("body", "").Text() != words[2] {
		t.Fatalf("carol's offline message: %s", m)
	}
}

// eachKV calls fn for every key with prefix of a Pebble store, read
// through the engine so that block compression cannot hide a secret.
func eachKV(t *testing.T, dir string, prefix []byte, fn func(k, v []byte)) {
	t.Helper()
	// The projections add up counters with a merger of their own; the
	// scan only looks at bytes, so Pebble's concatenation under the name
	// the store was written with will do.
	desc, err := pebble.Peek(dir, vfs.Default)
	if err != nil {
		t.Fatalf("peek %s: %v", dir, err)
	}
	stored, err := os.ReadFile(desc.OptionsFilename)
	if err != nil {
		t.Fatal(err)
	}
	merger := *pebble.DefaultMerger
	for _, line := range strings.Split(string(stored), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "merger="); ok && name != "nullptr" {
			merger.Name = name
		}
	}
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: quiet{}, Merger: &merger})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer db.Close()
	opts := &pebble.IterOptions{}
	if len(prefix) > 0 {
		upper := append([]byte(nil), prefix...)
		upper[len(upper)-1]++
		opts = &pebble.IterOptions{LowerBound: prefix, UpperBound: upper}
	}
	it, err := db.NewIter(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		fn(append([]byte(nil), it.Key()...), append([]byte(nil), it.Value()...))
	}
}

// recordStream reads the stream name from an embedded-store log record
// (version byte, 8-byte revision, uvarint length, name) and returns the
// rest of the record.
func recordStream(v []byte) (string, []byte, bool) {
	if len(v) < 10 || v[0] != 1 {
		return "", nil, false
	}
	n, w := binary.Uvarint(v[9:])
	if w <= 0 || 9+w+int(n) > len(v) {
		return "", nil, false
	}
	start := 9 + w
	return string(v[start : start+int(n)]), v[start+int(n):], true
}

// ownerOf finds the user whose JID the key starts with or contains first
// and returns it with the key minus that JID.
func ownerOf(users []string, key []byte) (string, []byte) {
	best, at := "", -1
	for _, u := range users {
		if i := bytes.Index(key, []byte(u)); i >= 0 && (at < 0 || i < at) {
			best, at = u, i
		}
	}
	if at < 0 {
		return "", key
	}
	rest := append(append([]byte(nil), key[:at]...), key[at+len(best):]...)
	return best, rest
}

// quiet keeps Pebble's recovery chatter out of the test output.
type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// slixmpp, as a second device, reads history kept while another client
// chatted, and collects what waited for it offline.
func TestSlixmppHistoryAndOffline(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	alice, bob, carol := addUser(t, s, "alice"), addUser(t, s, "bob"), addUser(t, s, "carol")
	a := login(t, s, alice, "", sasl.ScramSha256)
	a.HistoryOn(t)
	b := login(t, s, bob, "", sasl.ScramSha256)
	a.Send(t, "<presence/>")
	b.Send(t, "<presence/>")
	var want []string
	for i := range 7 {
		body := fmt.Sprintf("line %d for the archive", i)
		a.Send(t, fmt.Sprintf("<message to='%s' type='chat' id='h%d'><body>%s</body></message>", bob, i, body))
		b.Expect(t, "message", isMessage(fmt.Sprintf("h%d", i)))
		want = append(want, body)
	}
	// Bob writes to carol, who is offline.
	b.Send(t, "<message to='"+carol+"' type='chat' id='off'><body>for carol, later</body></message>")
	pingServer(t, b, s.Domain, "sync")

	ctx := ctxT(t, 60*time.Second)
	evs, err := slix(t, ctx, s, nil, "--jid", alice, "--scenario", "history", "--peer", bob)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		if e["event"] == "archived" {
			got = append(got, e["body"].(string))
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("slixmpp read the history %q, want %q", got, want)
	}
	evs, err = slix(t, ctx, s, nil, "--jid", carol, "--scenario", "offline")
	if err != nil {
		t.Fatal(err)
	}
	m := find(evs, "message")
	if m == nil || m["body"] != "for carol, later" || m["delay"] == "" {
		t.Fatalf("carol's offline messages: %v", evs)
	}
}
