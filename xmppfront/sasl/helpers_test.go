package sasl

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// account is one user's stored credentials plus the ClientKey a test
// expects the server to recover.
type account struct {
	creds     map[Hash]Credentials
	clientKey map[Hash][]byte
}

// users is an in-memory CredentialLookup.
type users map[string]account

func (u users) lookup(_ context.Context, name string, h Hash) (Credentials, error) {
	a, ok := u[name]
	if !ok {
		return Credentials{}, fmt.Errorf("no %q: %w", name, ErrUnknownUser)
	}
	c, ok := a.creds[h]
	if !ok {
		return Credentials{}, errors.New("no credentials for hash")
	}
	return c, nil
}

// register derives SCRAM-SHA-1 and SCRAM-SHA-256 credentials the way
// account creation does.
func (u users) register(t testing.TB, name, password string, salt []byte, iter int) {
	t.Helper()
	a := account{creds: map[Hash]Credentials{}, clientKey: map[Hash][]byte{}}
	for _, h := range []Hash{SHA1, SHA256} {
		ck, c, err := DeriveKeys(h, password, salt, iter)
		if err != nil {
			t.Fatal(err)
		}
		a.creds[h], a.clientKey[h] = c, ck
	}
	u[name] = a
}

func testUsers(t testing.TB) users {
	u := users{}
	u.register(t, "user", "pencil", []byte("saltsaltsaltsalt"), 4096)
	return u
}

// newTestServer builds a Server; a non-empty nonce fixes the server nonce.
func newTestServer(t testing.TB, mech string, cfg Config, nonce string) *Server {
	t.Helper()
	s, err := NewServer(mech, cfg)
	if err != nil {
		t.Fatalf("NewServer(%s): %v", mech, err)
	}
	if sc, ok := s.mech.(*scramServer); ok {
		sc.fixedNonce = nonce
	}
	return s
}

// scramFinal plays a SCRAM client's second step: given the bare first
// message, the server-first message and the c= value, it returns the
// client-final message (with extra attributes before p=) and the expected
// server-final message.
func scramFinal(t testing.TB, h Hash, password, bare, serverFirst, cbind, extra string) (final, serverFinal string) {
	t.Helper()
	var nonce, salt string
	var iter int
	for _, a := range strings.Split(serverFirst, ",") {
		switch a[0] {
		case 'r':
			nonce = a[2:]
		case 's':
			salt = a[2:]
		case 'i':
			fmt.Sscan(a[2:], &iter)
		}
	}
	saltB, err := base64.StdEncoding.DecodeString(salt)
	if err != nil {
		t.Fatal(err)
	}
	ck, c, err := DeriveKeys(h, password, saltB, iter)
	if err != nil {
		t.Fatal(err)
	}
	fn, _ := h.fn()
	without := "c=" + cbind + ",r=" + nonce + extra
	am := []byte(bare + "," + serverFirst + "," + without)
	proof := make([]byte, len(ck))
	subtle.XORBytes(proof, ck, mac(fn, c.StoredKey, am))
	return without + ",p=" + base64.StdEncoding.EncodeToString(proof),
		"v=" + base64.StdEncoding.EncodeToString(mac(fn, c.ServerKey, am))
}

// wantFailure checks err's condition and RFC 5802 server-error value.
func wantFailure(t testing.TB, err error, cond Condition, serverError string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s failure, got success", cond)
	}
	if got := ConditionOf(err); got != cond {
		t.Fatalf("condition = %q, want %q (err: %v)", got, cond, err)
	}
	if !errors.Is(err, cond) {
		t.Fatalf("errors.Is(%v, %q) = false", err, cond)
	}
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("err %T is not *Error", err)
	}
	if se.ServerError != serverError {
		t.Fatalf("server-error = %q, want %q (err: %v)", se.ServerError, serverError, err)
	}
}
