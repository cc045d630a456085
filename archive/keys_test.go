package archive

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"testing"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
)

func TestKeysLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	if err := e.keys.Provision(ctx, alice.jid, alice.clientKeys); !errors.Is(err, ErrProvisioned) {
		t.Fatalf("second Provision: %v, want ErrProvisioned", err)
	}
	other := newAccount(t, "alice@example.org", "wrong password")
	if err := e.keys.Unlock(ctx, alice.jid, domain.HashSHA256, other.clientKeys[domain.HashSHA256]); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v, want ErrWrongKey", err)
	}
	if e.keys.Unlocked(alice.jid) {
		t.Fatal("unlocked by a wrong key")
	}
	// Two sessions, one per SCRAM hash: both open the same identity.
	for _, h := range []string{domain.HashSHA1, domain.HashSHA256} {
		if err := e.keys.Unlock(ctx, alice.jid, h, alice.clientKeys[h]); err != nil {
			t.Fatalf("unlock %s: %v", h, err)
		}
	}
	e.keys.Release(alice.jid)
	if !e.keys.Unlocked(alice.jid) {
		t.Fatal("locked while a session remains")
	}
	e.keys.mu.Lock()
	id := e.keys.open["alice@example.org"].id
	e.keys.mu.Unlock()
	e.keys.Release(alice.jid)
	if e.keys.Unlocked(alice.jid) {
		t.Fatal("still unlocked after the last session")
	}
	if _, err := id.BlindIndex("bob@example.org"); !errors.Is(err, envelope.ErrWiped) {
		t.Fatalf("identity after the last release: %v, want ErrWiped", err)
	}
	if _, err := e.svc.Query(ctx, alice.jid, Query{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("query while locked: %v, want ErrLocked", err)
	}
	nobody := mustJID(t, "nobody@example.org")
	if err := e.keys.Unlock(ctx, nobody, domain.HashSHA256, alice.clientKeys[domain.HashSHA256]); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("unlock of an account without keys: %v, want ErrNoKeys", err)
	}
}

// Someone with write access to the key store puts their own public key in
// place, to read what is sealed while the user is offline: the next login
// refuses.
func TestSwappedPublicKeyDetected(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	_, evil, err := envelope.NewIdentity(cryptoRand)
	if err != nil {
		t.Fatal(err)
	}
	var wraps []envelope.WrappedIdentity
	for _, h := range []string{domain.HashSHA1, domain.HashSHA256} {
		w, _, err := e.ks.WrappedIdentity(ctx, "alice@example.org", h)
		if err != nil {
			t.Fatal(err)
		}
		wraps = append(wraps, w)
	}
	if err := e.ks.PutIdentity(ctx, "alice@example.org", evil, wraps); err != nil {
		t.Fatal(err)
	}
	err = e.keys.Unlock(ctx, alice.jid, domain.HashSHA256, alice.clientKeys[domain.HashSHA256])
	if !errors.Is(err, ErrPublicKeyMismatch) {
		t.Fatalf("unlock with a swapped public key: %v, want ErrPublicKeyMismatch", err)
	}
	if e.keys.Unlocked(alice.jid) {
		t.Fatal("unlocked despite the swap")
	}
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	alice := newAccount(t, "alice@example.org", "first password")
	bob := mustJID(t, "bob@example.org")
	e.provision(alice)
	if _, err := e.svc.Store(ctx, alice.jid, bob, stanza("bob@example.org", "alice@example.org", "before"), domain.DirectionIn, e.clock.Now()); err != nil {
		t.Fatal(err)
	}

	// A password change in a session: the identity in memory is wrapped
	// under the new password; history stays readable with it.
	e.unlock(alice)
	second := newAccount(t, "alice@example.org", "second password")
	if res, err := e.keys.Rewrap(ctx, alice.jid, nil, second.clientKeys); err != nil || res != Rewrapped {
		t.Fatalf("rewrap in session: %v, %v", res, err)
	}
	e.keys.Release(alice.jid)
	if err := e.keys.Unlock(ctx, alice.jid, domain.HashSHA256, alice.clientKeys[domain.HashSHA256]); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("old password after change: %v, want ErrWrongKey", err)
	}
	e.unlock(second)
	p, err := e.svc.Query(ctx, alice.jid, Query{})
	if err != nil || len(p.Messages) != 1 || p.Messages[0].Err != nil {
		t.Fatalf("history after rewrap: %+v %v", p, err)
	}
	e.keys.Release(alice.jid)

	// Offline, but the caller still knows the old ClientKeys.
	third := newAccount(t, "alice@example.org", "third password")
	if res, err := e.keys.Rewrap(ctx, alice.jid, second.clientKeys, third.clientKeys); err != nil || res != Rewrapped {
		t.Fatalf("rewrap with old keys: %v, %v", res, err)
	}

	// An administrator's reset while alice is offline: a new identity, the
	// old history is gone, new messages work.
	fourth := newAccount(t, "alice@example.org", "reset by admin")
	if res, err := e.keys.Rewrap(ctx, alice.jid, nil, fourth.clientKeys); err != nil || res != Replaced {
		t.Fatalf("admin reset: %v, %v", res, err)
	}
	if _, err := e.svc.Store(ctx, alice.jid, bob, stanza("bob@example.org", "alice@example.org", "after"), domain.DirectionIn, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.unlock(fourth)
	p, err = e.svc.Query(ctx, alice.jid, Query{})
	if err != nil || len(p.Messages) != 2 {
		t.Fatalf("after reset: %+v %v", p, err)
	}
	if !errors.Is(p.Messages[0].Err, ErrKeyGone) {
		t.Fatalf("old message after reset: %v, want ErrKeyGone", p.Messages[0].Err)
	}
	if p.Messages[1].Err != nil || string(p.Messages[1].Stanza) != string(stanza("bob@example.org", "alice@example.org", "after")) {
		t.Fatalf("new message after reset: %+v", p.Messages[1])
	}
}

func TestShred(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	bob := mustJID(t, "bob@example.org")
	e.provision(alice)
	e.unlock(alice)
	if _, err := e.svc.Store(ctx, alice.jid, bob, []byte("<message/>"), domain.DirectionOut, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.keys.Shred(ctx, alice.jid); err != nil {
		t.Fatal(err)
	}
	if e.keys.Unlocked(alice.jid) {
		t.Fatal("still unlocked after shred")
	}
	if keys, _ := e.ks.DataKeys(ctx, "alice@example.org"); len(keys) != 0 {
		t.Fatalf("%d data keys after shred", len(keys))
	}
	if err := e.keys.Unlock(ctx, alice.jid, domain.HashSHA256, alice.clientKeys[domain.HashSHA256]); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("unlock after shred: %v, want ErrNoKeys", err)
	}
	// The writer's data key went with the identity: nothing more is sealed.
	if _, err := e.svc.Store(ctx, alice.jid, bob, []byte("<message/>"), domain.DirectionOut, e.clock.Now()); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("store after shred: %v, want ErrNoKeys", err)
	}
}

// Data keys rotate by count: each key seals at most MaxUses records, and
// every record stays readable.
func TestRotation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{Rotation: envelope.RotationPolicy{MaxUses: 2}}, nil)
	alice := newAccount(t, "alice@example.org", "correct horse")
	e.provision(alice)
	for range 5 {
		if _, err := e.svc.Store(ctx, alice.jid, mustJID(t, "bob@example.org"), []byte("<message/>"), domain.DirectionOut, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := e.ks.DataKeys(ctx, "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("%d data keys for 5 records at 2 per key, want 3", len(keys))
	}
	e.unlock(alice)
	p, err := e.svc.Query(ctx, alice.jid, Query{})
	if err != nil || len(p.Messages) != 5 {
		t.Fatalf("%+v %v", p, err)
	}
	for _, m := range p.Messages {
		if m.Err != nil {
			t.Fatal(m.Err)
		}
	}
}

func TestClientKeyFromPasswordMatchesVerifier(t *testing.T) {
	vs, err := domain.NewSCRAMVerifiers(cryptoRand, "pencil", domain.MinSCRAMIterations)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		ck, err := ClientKeyFromPassword(v, "pencil")
		if err != nil {
			t.Fatal(err)
		}
		// A SCRAM proof made with this ClientKey is one the verifier
		// accepts: ClientProof = ClientKey XOR HMAC(StoredKey, msg), and
		// VerifyClientProof returns the ClientKey it recovers.
		msg := []byte("n=user,r=abc,r=abcdef,s=c2FsdA==,i=4096,c=biws,r=abcdef")
		sig := hmacFor(t, v, msg)
		proof := make([]byte, len(ck))
		for i := range ck {
			proof[i] = ck[i] ^ sig[i]
		}
		got, ok := v.VerifyClientProof(msg, proof)
		if !ok || string(got) != string(ck) {
			t.Fatalf("%s: the derived ClientKey does not match the verifier", v.Hash)
		}
	}
}

func hmacFor(t *testing.T, v domain.SCRAMVerifier, msg []byte) []byte {
	t.Helper()
	h := sha256.New
	if v.Hash == domain.HashSHA1 {
		h = sha1.New
	}
	m := hmac.New(h, v.StoredKey)
	m.Write(msg)
	return m.Sum(nil)
}
