package envelope_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
)

// Both SCRAM wraps of one identity must unlock the same keys, or a user who
// logs in with SCRAM-SHA-1 on one device and SCRAM-SHA-256 on another
// would see two different archives.
func TestWrapBothHashesUnwrapToSameIdentity(t *testing.T) {
	id, pub := newIdentity(t, 1)
	dk := newDataKey(t, 2)
	sealed, err := envelope.SealDataKey(pub, alice, dk)
	if err != nil {
		t.Fatal(err)
	}
	want, err := id.BlindIndex(bob)
	if err != nil {
		t.Fatal(err)
	}
	for _, hash := range []string{domain.HashSHA1, domain.HashSHA256} {
		t.Run(hash, func(t *testing.T) {
			ck := clientKey(t, hash, "correct horse")
			w, err := envelope.Wrap(testRand(3), id, alice, hash, ck)
			if err != nil {
				t.Fatal(err)
			}
			if w.Hash != hash {
				t.Fatalf("Hash = %q, want %q", w.Hash, hash)
			}
			got, err := envelope.Unwrap(w, alice, ck)
			if err != nil {
				t.Fatal(err)
			}
			if got.PublicKey() != pub {
				t.Fatalf("public key %s, want %s", got.PublicKey(), pub)
			}
			bi, err := got.BlindIndex(bob)
			if err != nil {
				t.Fatal(err)
			}
			if bi != want {
				t.Fatal("unwrapped identity has another index key")
			}
			opened, err := got.OpenDataKey(alice, sealed)
			if err != nil {
				t.Fatalf("unwrapped identity cannot open a data key: %v", err)
			}
			checkSameDataKey(t, dk, opened)
		})
	}
}

// checkSameDataKey proves two data keys are equal by opening with one what
// the other sealed.
func checkSameDataKey(t *testing.T, a, b *envelope.DataKey) {
	t.Helper()
	if a.ID() != b.ID() {
		t.Fatalf("data key id %s, want %s", b.ID(), a.ID())
	}
	aad := envelope.AAD{User: alice, Kind: envelope.KindArchive, RecordID: a.ID()}
	rec, err := envelope.Seal(testRand(99), a, aad, []byte("probe"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := envelope.Open(b, aad, rec)
	if err != nil || string(got) != "probe" {
		t.Fatalf("Open = %q, %v; want the probe", got, err)
	}
}

func TestUnwrapRefusesWrongContext(t *testing.T) {
	id, _ := newIdentity(t, 1)
	ck256 := clientKey(t, domain.HashSHA256, "correct horse")
	w, err := envelope.Wrap(testRand(2), id, alice, domain.HashSHA256, ck256)
	if err != nil {
		t.Fatal(err)
	}
	relabelled := w
	relabelled.Hash = domain.HashSHA1
	otherSalt := w
	otherSalt.Salt = bytes.Repeat([]byte{1}, len(w.Salt))

	tests := []struct {
		name string
		w    envelope.WrappedIdentity
		user string
		ck   []byte
		want error
	}{
		{"wrong password", w, alice, clientKey(t, domain.HashSHA256, "battery staple"), envelope.ErrAuth},
		{"other user", w, bob, ck256, envelope.ErrAuth},
		{"other salt", otherSalt, alice, ck256, envelope.ErrAuth},
		{"blob presented under the other hash", relabelled, alice, clientKey(t, domain.HashSHA1, "correct horse"), envelope.ErrAuth},
		{"client key of the other hash", w, alice, clientKey(t, domain.HashSHA1, "correct horse"), envelope.ErrInvalid},
		{"unknown hash", envelope.WrappedIdentity{Hash: "SHA-512", Salt: w.Salt, Blob: w.Blob}, alice, ck256, envelope.ErrCorrupt},
		{"full JID", w, alice + "/phone", ck256, envelope.ErrInvalid},
		{"empty user", w, "", ck256, envelope.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := envelope.Unwrap(tt.w, tt.user, tt.ck)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unwrap = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestWrapRefusesBadArguments(t *testing.T) {
	id, _ := newIdentity(t, 1)
	wiped, _ := newIdentity(t, 2)
	wiped.Wipe()
	ck := clientKey(t, domain.HashSHA256, "pw")
	tests := []struct {
		name string
		id   *envelope.Identity
		user string
		hash string
		ck   []byte
		want error
	}{
		{"nil identity", nil, alice, domain.HashSHA256, ck, envelope.ErrInvalid},
		{"wiped identity", wiped, alice, domain.HashSHA256, ck, envelope.ErrWiped},
		{"empty user", id, "", domain.HashSHA256, ck, envelope.ErrInvalid},
		{"full JID", id, alice + "/pc", domain.HashSHA256, ck, envelope.ErrInvalid},
		{"unknown hash", id, alice, "SHA-512", ck, envelope.ErrInvalid},
		{"short client key", id, alice, domain.HashSHA256, ck[:20], envelope.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := envelope.Wrap(testRand(3), tt.id, tt.user, tt.hash, tt.ck); !errors.Is(err, tt.want) {
				t.Fatalf("Wrap error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestUnwrapEveryFlipFails(t *testing.T) {
	id, _ := newIdentity(t, 1)
	ck := clientKey(t, domain.HashSHA1, "pw")
	w, err := envelope.Wrap(testRand(2), id, alice, domain.HashSHA1, ck)
	if err != nil {
		t.Fatal(err)
	}
	for i, blob := range flips(w.Blob) {
		if _, err := envelope.Unwrap(envelope.WrappedIdentity{Hash: w.Hash, Salt: w.Salt, Blob: blob}, alice, ck); !isTyped(err) {
			t.Fatalf("blob flip %d: error %v, want ErrCorrupt or ErrAuth", i, err)
		}
	}
	for i, salt := range flips(w.Salt) {
		if _, err := envelope.Unwrap(envelope.WrappedIdentity{Hash: w.Hash, Salt: salt, Blob: w.Blob}, alice, ck); !errors.Is(err, envelope.ErrAuth) {
			t.Fatalf("salt flip %d: error %v, want ErrAuth", i, err)
		}
	}
}

func TestUnwrapMalformed(t *testing.T) {
	id, _ := newIdentity(t, 1)
	ck := clientKey(t, domain.HashSHA1, "pw")
	w, err := envelope.Wrap(testRand(2), id, alice, domain.HashSHA1, ck)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(w.Blob) {
		if _, err := envelope.Unwrap(envelope.WrappedIdentity{Hash: w.Hash, Salt: w.Salt, Blob: w.Blob[:n]}, alice, ck); !errors.Is(err, envelope.ErrCorrupt) {
			t.Fatalf("blob truncated to %d: error %v, want ErrCorrupt", n, err)
		}
	}
	for n := range len(w.Salt) {
		if _, err := envelope.Unwrap(envelope.WrappedIdentity{Hash: w.Hash, Salt: w.Salt[:n], Blob: w.Blob}, alice, ck); !errors.Is(err, envelope.ErrCorrupt) {
			t.Fatalf("salt truncated to %d: error %v, want ErrCorrupt", n, err)
		}
	}
	long := append(bytes.Clone(w.Blob), 0)
	if _, err := envelope.Unwrap(envelope.WrappedIdentity{Hash: w.Hash, Salt: w.Salt, Blob: long}, alice, ck); !errors.Is(err, envelope.ErrCorrupt) {
		t.Fatalf("blob with a trailing byte: error %v, want ErrCorrupt", err)
	}
	v2 := bytes.Clone(w.Blob)
	v2[0] = 2
	_, err = envelope.Unwrap(envelope.WrappedIdentity{Hash: w.Hash, Salt: w.Salt, Blob: v2}, alice, ck)
	if !errors.Is(err, envelope.ErrUnknownVersion) || !errors.Is(err, envelope.ErrCorrupt) {
		t.Fatalf("version 2: error %v, want ErrUnknownVersion and ErrCorrupt", err)
	}
}

// A password change re-wraps the same identity: what was sealed before
// stays readable with the new password, and the old password's wrap is
// replaced (the old blob still opens with the old password, which is why
// the key store must overwrite it; see the package documentation).
func TestPasswordChangeRewraps(t *testing.T) {
	id, pub := newIdentity(t, 1)
	dk := newDataKey(t, 2)
	sealed, err := envelope.SealDataKey(pub, alice, dk)
	if err != nil {
		t.Fatal(err)
	}
	oldCK := clientKey(t, domain.HashSHA256, "old password")
	newCK := clientKey(t, domain.HashSHA256, "new password")
	oldW, err := envelope.Wrap(testRand(3), id, alice, domain.HashSHA256, oldCK)
	if err != nil {
		t.Fatal(err)
	}
	session, err := envelope.Unwrap(oldW, alice, oldCK)
	if err != nil {
		t.Fatal(err)
	}
	newW, err := envelope.Wrap(testRand(4), session, alice, domain.HashSHA256, newCK)
	if err != nil {
		t.Fatal(err)
	}
	session.Wipe()

	if _, err := envelope.Unwrap(newW, alice, oldCK); !errors.Is(err, envelope.ErrAuth) {
		t.Fatalf("new wrap with old password: %v, want ErrAuth", err)
	}
	later, err := envelope.Unwrap(newW, alice, newCK)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := later.OpenDataKey(alice, sealed)
	if err != nil {
		t.Fatalf("data key sealed before the change: %v", err)
	}
	checkSameDataKey(t, dk, opened)
}

// An administrator's reset has no old ClientKey: the new identity cannot
// open anything sealed to the old one.
func TestResetIdentityCannotOpenOldHistory(t *testing.T) {
	_, oldPub := newIdentity(t, 1)
	sealed, err := envelope.SealDataKey(oldPub, alice, newDataKey(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	fresh, freshPub := newIdentity(t, 3)
	if freshPub == oldPub {
		t.Fatal("reset produced the same public key")
	}
	if _, err := fresh.OpenDataKey(alice, sealed); !errors.Is(err, envelope.ErrAuth) {
		t.Fatalf("OpenDataKey with the new identity: %v, want ErrAuth", err)
	}
}

func TestNewIdentityShortRandom(t *testing.T) {
	if _, _, err := envelope.NewIdentity(bytes.NewReader(make([]byte, 40))); err == nil {
		t.Fatal("NewIdentity with 40 random bytes succeeded")
	}
}

func TestWrappedIdentityJSONRoundTrip(t *testing.T) {
	id, _ := newIdentity(t, 1)
	ck := clientKey(t, domain.HashSHA256, "pw")
	w, err := envelope.Wrap(testRand(2), id, alice, domain.HashSHA256, ck)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var back envelope.WrappedIdentity
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.Unwrap(back, alice, ck); err != nil {
		t.Fatalf("Unwrap after JSON: %v", err)
	}
}

func TestPublicKeyText(t *testing.T) {
	_, pub := newIdentity(t, 1)
	b, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != '"' {
		t.Fatalf("public key encodes as %s, want a JSON string", b)
	}
	var back envelope.PublicKey
	if err := json.Unmarshal(b, &back); err != nil || back != pub {
		t.Fatalf("round trip = %s, %v; want %s", back, err, pub)
	}
	for _, bad := range []string{`"not base64!"`, `"AAAA"`} {
		if err := json.Unmarshal([]byte(bad), &back); !errors.Is(err, envelope.ErrCorrupt) {
			t.Errorf("Unmarshal %s: %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestBlindIndex(t *testing.T) {
	id, _ := newIdentity(t, 1)
	other, _ := newIdentity(t, 2)
	index := func(id *envelope.Identity, partner string) [32]byte {
		t.Helper()
		b, err := id.BlindIndex(partner)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Stable across sessions: a second unwrap of the same identity (here,
	// a second call) must give the same term, or old entries are lost.
	first, second := index(id, bob), index(id, bob)
	if first != second {
		t.Error("index of one partner is not stable")
	}
	if index(id, bob) == index(id, "carol@example.net") {
		t.Error("two partners share an index term")
	}
	if index(id, bob) == index(other, bob) {
		t.Error("two users share an index term for the same partner")
	}
	for _, bad := range []string{"", bob + "/laptop"} {
		if _, err := id.BlindIndex(bad); !errors.Is(err, envelope.ErrInvalid) {
			t.Errorf("BlindIndex(%q): %v, want ErrInvalid", bad, err)
		}
	}
	id.Wipe()
	if _, err := id.BlindIndex(bob); !errors.Is(err, envelope.ErrWiped) {
		t.Errorf("BlindIndex after Wipe: %v, want ErrWiped", err)
	}
}
