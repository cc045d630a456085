package keystore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	"verlauf.im/verlauf/domain/envelope"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture is one user's keys with random blobs, so that a scan for them
// cannot match anything by chance.
type fixture struct {
	user  string
	pub   envelope.PublicKey
	wraps []envelope.WrappedIdentity
	keys  []DataKey
}

func newFixture(t *testing.T, user string, nkeys int) fixture {
	t.Helper()
	f := fixture{user: user}
	copy(f.pub[:], randomBytes(t, 32))
	for _, h := range []string{"SHA-1", "SHA-256"} {
		f.wraps = append(f.wraps, envelope.WrappedIdentity{Hash: h, Salt: randomBytes(t, 32), Blob: randomBytes(t, 105)})
	}
	for i := range nkeys {
		kind := envelope.KindArchive
		if i%2 == 1 {
			kind = envelope.KindOffline
		}
		f.keys = append(f.keys, DataKey{
			Sealed:  envelope.SealedDataKey{ID: uuid.Must(uuid.NewV7()), Blob: randomBytes(t, 81)},
			Kind:    kind,
			Created: time.Date(2025, 1, 2, 3, 4, 5, i, time.UTC),
			Uses:    i,
		})
	}
	return f
}

func (f fixture) put(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.PutIdentity(ctx, f.user, f.pub, f.wraps); err != nil {
		t.Fatal(err)
	}
	for _, k := range f.keys {
		if err := s.PutDataKey(ctx, f.user, k); err != nil {
			t.Fatal(err)
		}
	}
}

// secrets are the blobs whose bytes must be gone after a delete.
func (f fixture) secrets() [][]byte {
	var out [][]byte
	for _, w := range f.wraps {
		out = append(out, w.Blob)
	}
	for _, k := range f.keys {
		out = append(out, k.Sealed.Blob)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	f := newFixture(t, "alice@example.org", 4)
	f.put(t, s)
	s.Close()

	s = open(t, dir) // everything is read back after a restart
	defer s.Close()
	pub, ok, err := s.PublicKey(ctx, f.user)
	if err != nil || !ok || pub != f.pub {
		t.Fatalf("public key %v %v %v", pub, ok, err)
	}
	for _, want := range f.wraps {
		w, ok, err := s.WrappedIdentity(ctx, f.user, want.Hash)
		if err != nil || !ok || !bytes.Equal(w.Salt, want.Salt) || !bytes.Equal(w.Blob, want.Blob) || w.Hash != want.Hash {
			t.Fatalf("wrapped %s: %+v %v %v", want.Hash, w, ok, err)
		}
	}
	keys, err := s.DataKeys(ctx, f.user)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(f.keys) {
		t.Fatalf("%d data keys, want %d", len(keys), len(f.keys))
	}
	for i, k := range keys {
		w := f.keys[i]
		if k.Sealed.ID != w.Sealed.ID || !bytes.Equal(k.Sealed.Blob, w.Sealed.Blob) || k.Kind != w.Kind || !k.Created.Equal(w.Created) || k.Uses != w.Uses {
			t.Errorf("key %d: %+v, want %+v", i, k, w)
		}
	}
	if err := s.SetUses(ctx, f.user, f.keys[0].Sealed.ID, 42); err != nil {
		t.Fatal(err)
	}
	k, ok, err := s.DataKey(ctx, f.user, f.keys[0].Sealed.ID)
	if err != nil || !ok || k.Uses != 42 {
		t.Fatalf("after SetUses: %+v %v %v", k, ok, err)
	}
	// Unknown things are absent, not errors.
	if _, ok, err := s.PublicKey(ctx, "nobody@example.org"); ok || err != nil {
		t.Fatalf("unknown user: %v %v", ok, err)
	}
	if _, ok, err := s.DataKey(ctx, f.user, uuid.Must(uuid.NewV7())); ok || err != nil {
		t.Fatalf("unknown key: %v %v", ok, err)
	}
}

// A new identity (password change) replaces every wrap of the old one,
// including a hash that is no longer offered.
func TestPutIdentityReplaces(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	f := newFixture(t, "alice@example.org", 0)
	f.put(t, s)
	g := newFixture(t, "alice@example.org", 0)
	if err := s.PutIdentity(ctx, g.user, g.pub, g.wraps[1:]); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.WrappedIdentity(ctx, f.user, "SHA-1"); ok {
		t.Fatal("the SHA-1 wrap of the old identity survived")
	}
	w, ok, _ := s.WrappedIdentity(ctx, f.user, "SHA-256")
	if !ok || !bytes.Equal(w.Blob, g.wraps[1].Blob) {
		t.Fatal("the new SHA-256 wrap is not there")
	}
}

func TestDeleteDataKeys(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	f := newFixture(t, "alice@example.org", 3)
	f.put(t, s)
	if err := s.DeleteDataKeys(ctx, f.user, f.keys[0].Sealed.ID, f.keys[2].Sealed.ID); err != nil {
		t.Fatal(err)
	}
	keys, err := s.DataKeys(ctx, f.user)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Sealed.ID != f.keys[1].Sealed.ID {
		t.Fatalf("after delete: %+v, want only key 1", keys)
	}
}

// The point of the store: after DeleteUser and a close, no file in the
// directory holds any byte sequence of the deleted user's blobs, while the
// other user's keys are intact. The control scan before the delete shows
// that the scan would see the blobs (they are random, so Snappy leaves
// them as they are).
func TestDeleteUserLeavesNoBytes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	alice := newFixture(t, "alice@example.org", 6)
	bob := newFixture(t, "bob@example.org", 2)
	alice.put(t, s)
	bob.put(t, s)
	s.Close()
	if found := scanDir(t, dir, alice.secrets()); len(found) == 0 {
		t.Fatal("control: the blobs are not found in the files before the delete; the scan proves nothing")
	}

	s = open(t, dir)
	// Some of the user's keys reach the tables through a flush, some stay
	// in the memtable and WAL: both must go.
	extra := newFixture(t, alice.user, 2)
	for _, k := range extra.keys {
		if err := s.PutDataKey(ctx, alice.user, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUser(ctx, alice.user); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.PublicKey(ctx, alice.user); ok {
		t.Fatal("public key still there")
	}
	if keys, _ := s.DataKeys(ctx, alice.user); len(keys) != 0 {
		t.Fatalf("%d data keys still there", len(keys))
	}
	s.Close()

	secrets := append(alice.secrets(), extra.secrets()...)
	if found := scanDir(t, dir, secrets); len(found) > 0 {
		t.Fatalf("deleted key bytes still in %v", found)
	}
	// Through the engine too, and bob is untouched.
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		for _, sec := range secrets {
			if bytes.Contains(it.Value(), sec) {
				t.Errorf("deleted blob readable under %q", it.Key())
			}
		}
	}
	it.Close()
	db.Close()
	s = open(t, dir)
	defer s.Close()
	if keys, err := s.DataKeys(ctx, bob.user); err != nil || len(keys) != 2 {
		t.Fatalf("bob's keys: %d, %v", len(keys), err)
	}
}

// scanDir returns the files under dir that contain any of the needles.
func scanDir(t *testing.T, dir string, needles [][]byte) []string {
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
		for _, n := range needles {
			if bytes.Contains(b, n) {
				found = append(found, filepath.Base(path))
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestClosed(t *testing.T) {
	s := open(t, t.TempDir())
	s.Close()
	if _, _, err := s.PublicKey(context.Background(), "a@b"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
