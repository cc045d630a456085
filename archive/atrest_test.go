package archive

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore/keystore"
)

type keystoreDataKey = keystore.DataKey

// encodings returns the forms in which s could appear in the data: raw,
// hex, and base64 (standard and URL alphabets) at each of the three
// alignments it can have inside a longer base64 text.
func encodings(s string) map[string][]byte {
	out := map[string][]byte{
		"raw":       []byte(s),
		"hex":       []byte(hex.EncodeToString([]byte(s))),
		"HEX":       []byte(strings.ToUpper(hex.EncodeToString([]byte(s)))),
		"raw lower": []byte(strings.ToLower(s)),
	}
	for k := range 3 {
		b := append(make([]byte, k), s...)
		start, end := (8*k+5)/6, 8*(k+len(s))/6
		for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64url": base64.URLEncoding} {
			out[fmt.Sprintf("%s@%d", name, k)] = []byte(enc.EncodeToString(b)[start:end])
		}
	}
	return out
}

type needle struct {
	what, form string
	b          []byte
}

func needles(secrets ...string) []needle {
	var out []needle
	for _, s := range secrets {
		for form, b := range encodings(s) {
			out = append(out, needle{s, form, b})
		}
	}
	return out
}

// scanFiles returns "file: secret (form)" for every needle found in the
// raw bytes of the files under dir.
func scanFiles(t *testing.T, dir string, blobs [][]byte) []string {
	t.Helper()
	var ns []needle
	for _, b := range blobs {
		ns = append(ns, needle{fmt.Sprintf("%x", b[:8]), "raw", b})
	}
	return scanNeedles(t, dir, ns)
}

func scanNeedles(t *testing.T, dir string, ns []needle) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if bytes.Contains(b, n.b) {
				found = append(found, fmt.Sprintf("%s: %s (%s)", path, n.what, n.form))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// scanPebble reads every key and value of the Pebble store in dir, so that
// block compression cannot hide a leak from scanNeedles.
func scanPebble(t *testing.T, dir string, ns []needle) (found []string, kvs int) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: quietLogger{}, Merger: mergerOf(t, dir)})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		kvs++
		for _, n := range ns {
			if bytes.Contains(it.Key(), n.b) || bytes.Contains(it.Value(), n.b) {
				found = append(found, fmt.Sprintf("%s key %q: %s (%s)", filepath.Base(dir), it.Key(), n.what, n.form))
			}
		}
	}
	return found, kvs
}

// mergerOf returns a merger by the name dir's store was written with (the
// projections add up counters with their own). The scan only looks at the
// bytes, so Pebble's concatenation under that name does.
func mergerOf(t *testing.T, dir string) *pebble.Merger {
	t.Helper()
	desc, err := pebble.Peek(dir, vfs.Default)
	if err != nil {
		t.Fatalf("peek %s: %v", dir, err)
	}
	opts, err := os.ReadFile(desc.OptionsFilename)
	if err != nil {
		t.Fatal(err)
	}
	m := *pebble.DefaultMerger
	for _, line := range strings.Split(string(opts), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "merger="); ok && name != "nullptr" {
			m.Name = name
		}
	}
	return &m
}

// The at-rest promise (issue 4): after a conversation with history on,
// messages archived while the user was offline, and messages waiting in
// an offline queue, nothing in the data directories (event log,
// projections, key store) reveals a body or a partner's JID, in any
// encoding, in the files or through the storage engine. After a login the
// same data reads back.
func TestAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := newEnv(t, dir, Config{}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	bob := newAccount(t, "bob@example.org", "battery staple")
	e.provision(alice)
	e.provision(bob)
	if _, err := e.svc.SetPrefs(ctx, alice.jid, domain.ArchiveAlways, nil, nil); err != nil {
		t.Fatal(err)
	}

	partners := []string{"zephyrinus@faraway.example", "quillon.x@elsewhere.example", "mirabelle@nowhere.example"}
	var words []string
	for i := range 12 {
		words = append(words, fmt.Sprintf("xylophonic%dplumb", i))
	}
	e.unlock(alice)
	for i, w := range words[:6] {
		p := partners[i%3]
		if _, err := e.svc.Store(ctx, alice.jid, mustJID(t, p+"/laptop"), stanza(p+"/laptop", "alice@example.org", w), domain.DirectionIn, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e.keys.Release(alice.jid)
	for i, w := range words[6:9] { // while alice is offline: not indexed
		p := partners[i%3]
		if _, err := e.svc.Store(ctx, alice.jid, mustJID(t, p), stanza("alice@example.org", p, w), domain.DirectionOut, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range words[9:] { // waiting for bob
		if _, err := e.svc.Queue(ctx, bob.jid, stanza(partners[i%3]+"/phone", "bob@example.org", w)); err != nil {
			t.Fatal(err)
		}
	}
	e.waitIndexed()
	e.close()

	secrets := append(append([]string{}, words...), partners...)
	for _, p := range partners {
		secrets = append(secrets, p+"/laptop", p+"/phone")
	}
	ns := needles(secrets...)
	for _, d := range e.dataDirs() {
		if found := scanNeedles(t, d, ns); len(found) > 0 {
			t.Errorf("found in the files:\n%s", strings.Join(found, "\n"))
		}
		found, kvs := scanPebble(t, d, ns)
		if len(found) > 0 {
			t.Errorf("found through pebble:\n%s", strings.Join(found, "\n"))
		}
		if kvs == 0 {
			t.Errorf("%s: no keys read; the scan proves nothing", d)
		}
	}
	// Control: the scan does find what is in clear by design, the owner's
	// own JID in the stream names.
	if found, _ := scanPebble(t, e.dataDirs()[0], needles("alice@example.org")); len(found) == 0 {
		t.Fatal("control: the owner's JID is not found in the event store; the scan is blind")
	}

	// After a login, everything reads back.
	e = newEnv(t, dir, Config{}, nil)
	e.unlock(alice)
	e.unlock(bob)
	if n, err := e.svc.IndexPending(ctx, alice.jid); err != nil || n != 3 {
		t.Fatalf("IndexPending: %d %v", n, err)
	}
	p, err := e.svc.Query(ctx, alice.jid, Query{})
	if err != nil || len(p.Messages) != 9 {
		t.Fatalf("history: %d messages, %v", len(p.Messages), err)
	}
	for i, m := range p.Messages {
		if m.Err != nil || !bytes.Contains(m.Stanza, []byte(words[i])) || m.Partner != partners[i%3] {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	with, err := e.svc.Query(ctx, alice.jid, Query{With: mustJID(t, partners[0])})
	if err != nil || len(with.Messages) != 3 {
		t.Fatalf("with %s: %d messages, %v; want 3 (two online, one offline)", partners[0], len(with.Messages), err)
	}
	q, err := e.svc.Drain(ctx, bob.jid)
	if err != nil || len(q) != 3 {
		t.Fatalf("bob's queue: %d, %v", len(q), err)
	}
	for i, m := range q {
		if m.Err != nil || !bytes.Contains(m.Stanza, []byte(words[9+i])) {
			t.Fatalf("queued %d: %+v", i, m)
		}
	}
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
