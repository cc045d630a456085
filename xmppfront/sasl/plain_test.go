package sasl

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestPlain(t *testing.T) {
	u := testUsers(t)
	tests := []struct {
		name    string
		msg     string
		cond    Condition // "" for success
		authzid string
	}{
		{"ok", "\x00user\x00pencil", "", ""},
		{"ok, case-mapped name", "\x00USER\x00pencil", "", ""},
		{"ok with authzid", "user@example.net\x00user\x00pencil", "", "user@example.net"},
		{"wrong password", "\x00user\x00pencil!", NotAuthorized, ""},
		{"password differs in case", "\x00user\x00Pencil", NotAuthorized, ""},
		{"unknown user", "\x00nobody\x00pencil", NotAuthorized, ""},
		{"one NUL", "user\x00pencil", MalformedRequest, ""},
		{"no NUL", "userpencil", MalformedRequest, ""},
		{"three NULs", "\x00user\x00pen\x00cil", MalformedRequest, ""},
		{"NUL in front", "\x00\x00user\x00pencil", MalformedRequest, ""},
		{"empty authcid", "\x00\x00pencil", MalformedRequest, ""},
		{"empty password", "\x00user\x00", MalformedRequest, ""},
		{"invalid UTF-8", "\x00us\xffer\x00pencil", MalformedRequest, ""},
		{"authcid fails PRECIS", "\x00us er\x00pencil", MalformedRequest, ""},
		{"password fails PRECIS", "\x00user\x00pen\u0007cil", NotAuthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Plain, Config{Lookup: u.lookup, TLS: true}, "")
			out, done, err := s.Step(context.Background(), []byte(tt.msg))
			if tt.cond != "" {
				if done || out != nil {
					t.Fatalf("done=%v out=%q", done, out)
				}
				wantFailure(t, err, tt.cond, "")
				if tt.name == "unknown user" && !errors.Is(err, ErrUnknownUser) {
					t.Fatalf("cause %v does not say unknown user", err)
				}
				return
			}
			if err != nil || !done || out != nil {
				t.Fatalf("done=%v out=%q err=%v", done, out, err)
			}
			r := s.Result()
			if r.Mechanism != Plain || r.Username != "user" || r.Authzid != tt.authzid || r.Password != "pencil" || r.Hash != SHA256 {
				t.Fatalf("result = %+v", r)
			}
			if !bytes.Equal(r.ClientKey, u["user"].clientKey[SHA256]) {
				t.Fatal("wrong ClientKey")
			}
			// The caller derives the other hash's key from the password.
			c := u["user"].creds[SHA1]
			ck, _, err := DeriveKeys(SHA1, r.Password, c.Salt, c.Iterations)
			if err != nil || !bytes.Equal(ck, u["user"].clientKey[SHA1]) {
				t.Fatalf("SHA-1 ClientKey from the password: %v", err)
			}
		})
	}
}

func TestPlainHashOption(t *testing.T) {
	u := testUsers(t)
	s := newTestServer(t, Plain, Config{Lookup: u.lookup, TLS: true, PlainHash: SHA1}, "")
	if _, done, err := s.Step(context.Background(), []byte("\x00user\x00pencil")); err != nil || !done {
		t.Fatalf("done=%v err=%v", done, err)
	}
	if r := s.Result(); r.Hash != SHA1 || !bytes.Equal(r.ClientKey, u["user"].clientKey[SHA1]) {
		t.Fatalf("result = %+v", r)
	}
}

func TestPlainEmptyInitialResponse(t *testing.T) {
	s := newTestServer(t, Plain, Config{Lookup: testUsers(t).lookup, TLS: true}, "")
	ctx := context.Background()
	if out, done, err := s.Step(ctx, nil); err != nil || done || out == nil || len(out) != 0 {
		t.Fatalf("out=%q done=%v err=%v", out, done, err)
	}
	// A second empty message is a real (empty) response, and malformed.
	_, _, err := s.Step(ctx, nil)
	wantFailure(t, err, MalformedRequest, "")
}

func TestDeriveKeys(t *testing.T) {
	// Passwords are prepared with OpaqueString: a decomposed "é" and the
	// composed one are the same password.
	salt := []byte("saltsaltsaltsalt")
	a, ca, err := DeriveKeys(SHA256, "caf\u00e9", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	b, cb, err := DeriveKeys(SHA256, "cafe\u0301", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || !bytes.Equal(ca.StoredKey, cb.StoredKey) {
		t.Fatal("NFC-equivalent passwords derive different keys")
	}
	if len(a) != 32 || len(ca.ServerKey) != 32 || ca.Iterations != 4096 || !bytes.Equal(ca.Salt, salt) {
		t.Fatalf("credentials = %+v", ca)
	}
	for _, bad := range []struct {
		h    Hash
		pw   string
		iter int
	}{{"MD5", "pencil", 4096}, {SHA256, "", 4096}, {SHA256, "pencil", 0}} {
		if _, _, err := DeriveKeys(bad.h, bad.pw, salt, bad.iter); err == nil {
			t.Errorf("DeriveKeys(%q, %q, %d) succeeded", bad.h, bad.pw, bad.iter)
		}
	}
}
