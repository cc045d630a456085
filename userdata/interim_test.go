package userdata

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
)

// clientKeys derives the ClientKey of password for each hash, as a login
// with that mechanism yields it (SCRAM from the proof, PLAIN from the
// password).
func (e *env) clientKeys(user jid.JID, password string, hashes ...string) map[string][]byte {
	e.t.Helper()
	out := map[string][]byte{}
	for _, h := range hashes {
		v, err := e.accounts.Credentials(context.Background(), user, h)
		if err != nil {
			e.t.Fatalf("%s verifier of %s: %v", h, user, err)
		}
		ck, err := archive.ClientKeyFromPassword(v, password)
		if err != nil {
			e.t.Fatal(err)
		}
		out[h] = ck
	}
	return out
}

// login does what the front ends do after a successful authentication
// with the account's first verifier hash: Reseal with the login's
// ClientKey, then Unlock.
func (e *env) login(user jid.JID, password string) {
	e.t.Helper()
	ctx := context.Background()
	for _, h := range []string{domain.HashSHA256, domain.HashSHA1} {
		if _, err := e.accounts.Credentials(ctx, user, h); err != nil {
			continue
		}
		cks := e.clientKeys(user, password, h)
		if _, err := e.keys.Reseal(ctx, user, cks); err != nil {
			e.t.Fatalf("reseal %s: %v", user, err)
		}
		if err := e.keys.Unlock(ctx, user, h, cks[h]); err != nil {
			e.t.Fatalf("unlock %s: %v", user, err)
		}
		return
	}
	e.t.Fatalf("%s has no verifier", user)
}

func (e *env) interimHashes(user string) int {
	e.t.Helper()
	in, ok, err := e.ks.Interim(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return 0
	}
	return len(in.Keys)
}

// An operator's bulk import (verifiers of both hashes, no password): no
// interim key reaches the caller; the server keeps them until the user's
// logins reseal the identity, and the history is readable after.
func TestBulkImportSealedUntilFirstLogin(t *testing.T) {
	ctx := context.Background()
	src := newEnv(t)
	alice := populate(t, src, 20)
	file, m := export(t, src, alice, XEP0227, ExportOptions{IncludeCredentials: true})
	const u = "alice@example.org"

	dst := newEnv(t)
	rep, err := Import(ctx, bytes.NewReader(file), dst.deps(), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Users[0].Created || !rep.Users[0].Interim {
		t.Fatalf("report %+v", rep.Users[0])
	}
	if n := dst.interimHashes(u); n != 2 {
		t.Fatalf("interim keys in the key store: %d, want 2", n)
	}
	if _, err := dst.archive.Query(ctx, alice, archive.Query{}); !errors.Is(err, archive.ErrLocked) {
		t.Fatalf("history before any login: %v, want ErrLocked", err)
	}

	// A wrong password's ClientKey reseals nothing.
	wrong := dst.clientKeys(alice, "not alice's", domain.HashSHA256)
	if ok, err := dst.keys.Reseal(ctx, alice, wrong); ok || !errors.Is(err, archive.ErrWrongKey) {
		t.Fatalf("reseal with a wrong password: %v %v", ok, err)
	}
	if n := dst.interimHashes(u); n != 2 {
		t.Fatalf("interim keys after a wrong key: %d, want 2", n)
	}

	// First login, SCRAM-SHA-256: the SHA-256 interim key is gone, the
	// SHA-1 one waits for a login that yields that hash.
	dst.login(alice, alicePW)
	if n := dst.interimHashes(u); n != 1 {
		t.Fatalf("interim keys after a SHA-256 login: %d, want 1", n)
	}
	second, m2 := export(t, dst, alice, XEP0227, ExportOptions{IncludeCredentials: true})
	if m2.Counts[KindMessage] != m.Counts[KindMessage] || !bytes.Contains(second, []byte("reply 19")) {
		t.Fatalf("history after the first login: %v", m2.Counts)
	}
	dst.keys.Release(alice)

	// A PLAIN login gives every hash: the last interim key ends.
	if ok, err := dst.keys.Reseal(ctx, alice, dst.clientKeys(alice, alicePW, domain.HashSHA1, domain.HashSHA256)); !ok || err != nil {
		t.Fatalf("reseal at a PLAIN login: %v %v", ok, err)
	}
	if n := dst.interimHashes(u); n != 0 {
		t.Fatalf("interim keys after logins with both hashes: %d", n)
	}
	// Later logins: nothing to reseal, either mechanism unlocks.
	for _, h := range []string{domain.HashSHA1, domain.HashSHA256} {
		cks := dst.clientKeys(alice, alicePW, h)
		if ok, err := dst.keys.Reseal(ctx, alice, cks); ok || err != nil {
			t.Fatalf("reseal at a later %s login: %v %v", h, ok, err)
		}
		if err := dst.keys.Unlock(ctx, alice, h, cks[h]); err != nil {
			t.Fatalf("later %s login: %v", h, err)
		}
		p, err := dst.archive.Query(ctx, alice, archive.Query{Max: 100})
		if err != nil || len(p.Messages) != m.Counts[KindMessage] {
			t.Fatalf("history at a later %s login: %d, %v", h, len(p.Messages), err)
		}
		dst.keys.Release(alice)
	}
}

// A detached manifest is not in the file (no XML comment, which Prosody
// refuses) and covers the whole file.
func TestDetachedManifest(t *testing.T) {
	e := newEnv(t)
	alice := populate(t, e, 3)
	for _, f := range []Format{XEP0227, JSONLines} {
		out, m := export(t, e, alice, f, ExportOptions{IncludeCredentials: true, DetachedManifest: true})
		sum := sha256.Sum256(out)
		if bytes.Contains(out, []byte("<!--")) || bytes.Contains(out, []byte(`"kind":"manifest"`)) || m.SHA256 != hex.EncodeToString(sum[:]) || m.Bytes != int64(len(out)) {
			t.Errorf("%s: manifest %+v in or not over the file", f, m)
		}
	}
}

// ejabberd 23.01's export_piefxis writes each field of
// <scram-credentials> as base64 of the base64 it stores: the verifier is
// read through that, and the password still matches.
func TestImportEjabberdDoubleEncodedSCRAM(t *testing.T) {
	ctx := context.Background()
	v, err := domain.NewSCRAMVerifier(domain.HashSHA1, "pencil", []byte("0123456789abcdef"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	b2 := func(b []byte) string {
		return base64.StdEncoding.EncodeToString([]byte(base64.StdEncoding.EncodeToString(b)))
	}
	file := "<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'><user name='romeo'>" +
		"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096</iter-count>" +
		"<salt>" + b2(v.Salt) + "</salt><server-key>" + b2(v.ServerKey) + "</server-key><stored-key>" + b2(v.StoredKey) + "</stored-key>" +
		"</scram-credentials></user></host></server-data>"
	e := newEnv(t)
	if _, err := Import(ctx, strings.NewReader(file), e.deps(), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	romeo := mustJID(t, "romeo@example.org")
	if err := e.accounts.VerifyPassword(ctx, romeo, "pencil"); err != nil {
		t.Fatalf("password after a double-encoded import: %v", err)
	}
	// Keys of the wrong size that do not decode twice stay refused.
	bad := strings.Replace(file, b2(v.StoredKey), base64.StdEncoding.EncodeToString([]byte("short")), 1)
	if _, err := Import(ctx, strings.NewReader(bad), newEnv(t).deps(), ImportOptions{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad verifier: %v, want ErrMalformed", err)
	}
}
