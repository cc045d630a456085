package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"verlauf.im/verlauf/domain"
)

// imported is an account as a bulk import sees it: the verifiers of the
// file, and (for the test only) the ClientKeys its logins will yield.
type imported struct {
	account
	verifiers []domain.SCRAMVerifier
}

func newImported(t *testing.T, s, password string, hashes ...string) imported {
	t.Helper()
	a := imported{account: account{jid: mustJID(t, s), clientKeys: map[string][]byte{}}}
	for _, h := range hashes {
		salt, err := domain.NewSalt(rand.Reader, domain.DefaultSaltLen)
		if err != nil {
			t.Fatal(err)
		}
		v, err := domain.NewSCRAMVerifier(h, password, salt, domain.MinSCRAMIterations)
		if err != nil {
			t.Fatal(err)
		}
		ck, err := ClientKeyFromPassword(v, password)
		if err != nil {
			t.Fatal(err)
		}
		a.verifiers = append(a.verifiers, v)
		a.clientKeys[h] = ck
	}
	return a
}

// interimKeys returns the interim keys the key store holds for user, nil
// if none.
func (e *env) interimKeys(user string) map[string][]byte {
	e.t.Helper()
	in, ok, err := e.ks.Interim(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return nil
	}
	return in.Keys
}

// readable checks that user's archive holds exactly bodies, all opened.
func (e *env) readable(user imported, bodies ...string) {
	e.t.Helper()
	p, err := e.svc.Query(context.Background(), user.jid, Query{})
	if err != nil || len(p.Messages) != len(bodies) {
		e.t.Fatalf("history: %d messages, %v; want %d", len(p.Messages), err, len(bodies))
	}
	for i, m := range p.Messages {
		if m.Err != nil || !bytes.Contains(m.Stanza, []byte(bodies[i])) {
			e.t.Fatalf("message %d: %v %s", i, m.Err, m.Stanza)
		}
	}
}

func (e *env) receive(user imported, body string) {
	e.t.Helper()
	bob := mustJID(e.t, "bob@example.net")
	if _, err := e.svc.Store(context.Background(), user.jid, bob, stanza("bob@example.net", user.jid.String(), body), domain.DirectionIn, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
}

// An account imported from both hashes' verifiers: each mechanism's
// first login reseals its hash; after both, no interim key is left, on
// the engine or in the files.
func TestResealInterim(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := newEnv(t, dir, Config{}, nil)
	alice := newImported(t, "alice@example.org", "imported password", domain.HashSHA1, domain.HashSHA256)
	const u = "alice@example.org"
	if err := e.keys.ProvisionInterim(ctx, alice.jid, alice.verifiers); err != nil {
		t.Fatal(err)
	}
	if err := e.keys.ProvisionInterim(ctx, alice.jid, alice.verifiers); !errors.Is(err, ErrProvisioned) {
		t.Fatalf("second ProvisionInterim: %v, want ErrProvisioned", err)
	}
	interim := e.interimKeys(u)
	if len(interim) != 2 {
		t.Fatalf("interim keys after import: %d, want 2", len(interim))
	}
	saved := [][]byte{bytes.Clone(interim[domain.HashSHA1]), bytes.Clone(interim[domain.HashSHA256])}
	if found := filesContaining(t, filepath.Join(dir, "keys"), saved); len(found) == 0 {
		t.Fatal("control: the interim keys are not in the key store's files; the final scan would prove nothing")
	}
	// History arrives before the first login: sealed to the public key.
	e.receive(alice, "imported")

	// A wrong ClientKey (another password) reseals nothing and unlocks
	// nothing.
	other := newImported(t, u, "not the password", domain.HashSHA256)
	if ok, err := e.keys.Reseal(ctx, alice.jid, other.clientKeys); ok || !errors.Is(err, ErrWrongKey) {
		t.Fatalf("reseal with a wrong key: %v %v, want ErrWrongKey", ok, err)
	}
	if err := e.keys.Unlock(ctx, alice.jid, domain.HashSHA256, other.clientKeys[domain.HashSHA256]); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("unlock with a wrong key: %v, want ErrWrongKey", err)
	}
	if len(e.interimKeys(u)) != 2 || e.keys.Unlocked(alice.jid) {
		t.Fatal("a wrong key changed the interim keys or unlocked")
	}

	// First login, SCRAM-SHA-256: Reseal, then Unlock.
	sha256Only := map[string][]byte{domain.HashSHA256: alice.clientKeys[domain.HashSHA256]}
	if ok, err := e.keys.Reseal(ctx, alice.jid, sha256Only); !ok || err != nil {
		t.Fatalf("first reseal: %v %v", ok, err)
	}
	if left := e.interimKeys(u); len(left) != 1 || left[domain.HashSHA1] == nil {
		t.Fatalf("interim keys after a SHA-256 login: %v, want SHA-1 only", left)
	}
	if err := e.keys.Unlock(ctx, alice.jid, domain.HashSHA256, alice.clientKeys[domain.HashSHA256]); err != nil {
		t.Fatal(err)
	}
	e.readable(alice, "imported")
	e.receive(alice, "while online")
	e.keys.Release(alice.jid)
	// The next SHA-256 login has nothing to reseal.
	if ok, err := e.keys.Reseal(ctx, alice.jid, sha256Only); ok || err != nil {
		t.Fatalf("second SHA-256 reseal: %v %v, want a no-op", ok, err)
	}

	// A SCRAM-SHA-1 login whose front end calls Unlock only: Unlock
	// reseals the hash itself.
	if err := e.keys.Unlock(ctx, alice.jid, domain.HashSHA1, alice.clientKeys[domain.HashSHA1]); err != nil {
		t.Fatal(err)
	}
	if left := e.interimKeys(u); left != nil {
		t.Fatalf("interim keys after logins with both hashes: %v", left)
	}
	e.readable(alice, "imported", "while online")
	e.keys.Release(alice.jid)
	if ok, err := e.keys.Reseal(ctx, alice.jid, alice.clientKeys); ok || err != nil {
		t.Fatalf("reseal without interim keys: %v %v, want a no-op", ok, err)
	}
	// Every later login, with either mechanism, reads the history.
	for _, h := range []string{domain.HashSHA1, domain.HashSHA256} {
		if err := e.keys.Unlock(ctx, alice.jid, h, alice.clientKeys[h]); err != nil {
			t.Fatalf("later %s login: %v", h, err)
		}
		e.readable(alice, "imported", "while online")
		e.keys.Release(alice.jid)
	}
	e.close()
	if found := filesContaining(t, filepath.Join(dir, "keys"), saved); len(found) > 0 {
		t.Fatalf("interim key bytes still in %v", found)
	}
}

// Prosody and ejabberd export one hash: the first login ends the interim
// key; a login for an account without interim keys changes nothing.
func TestResealSingleHash(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	romeo := newImported(t, "romeo@example.org", "pencil", domain.HashSHA1)
	if err := e.keys.ProvisionInterim(ctx, romeo.jid, romeo.verifiers); err != nil {
		t.Fatal(err)
	}
	e.receive(romeo, "from the old server")
	if ok, err := e.keys.Reseal(ctx, romeo.jid, romeo.clientKeys); !ok || err != nil {
		t.Fatalf("reseal: %v %v", ok, err)
	}
	if left := e.interimKeys("romeo@example.org"); left != nil {
		t.Fatalf("interim keys after the first login: %v", left)
	}
	if err := e.keys.Unlock(ctx, romeo.jid, domain.HashSHA1, romeo.clientKeys[domain.HashSHA1]); err != nil {
		t.Fatal(err)
	}
	e.readable(romeo, "from the old server")

	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	before, _, _ := e.ks.WrappedIdentity(ctx, "alice@example.org", domain.HashSHA256)
	if ok, err := e.keys.Reseal(ctx, alice.jid, alice.clientKeys); ok || err != nil {
		t.Fatalf("reseal of a registered account: %v %v", ok, err)
	}
	if after, _, _ := e.ks.WrappedIdentity(ctx, "alice@example.org", domain.HashSHA256); !bytes.Equal(before.Blob, after.Blob) {
		t.Fatal("reseal of a registered account rewrote its wrap")
	}
}

// An administrator's reset of an imported account nobody logged in to:
// the server holds the interim keys, so the history survives.
func TestRewrapInterim(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	romeo := newImported(t, "romeo@example.org", "pencil", domain.HashSHA1)
	if err := e.keys.ProvisionInterim(ctx, romeo.jid, romeo.verifiers); err != nil {
		t.Fatal(err)
	}
	e.receive(romeo, "kept")
	reset := newAccount(t, "romeo@example.org", "reset by admin")
	if res, err := e.keys.Rewrap(ctx, romeo.jid, nil, reset.clientKeys); err != nil || res != Rewrapped {
		t.Fatalf("reset of an interim account: %v %v, want Rewrapped", res, err)
	}
	if left := e.interimKeys("romeo@example.org"); left != nil {
		t.Fatalf("interim keys after the reset: %v", left)
	}
	e.unlock(reset)
	e.readable(imported{account: reset}, "kept")
}

// filesContaining returns the files under dir that contain any needle.
func filesContaining(t *testing.T, dir string, needles [][]byte) []string {
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
