package sasl

import (
	"context"
	"testing"
)

// BenchmarkSCRAMSHA256Exchange is a full server-side SCRAM-SHA-256 login
// (both steps, lookup included) for an account stored at 4096 iterations.
// The client's PBKDF2 runs once, outside the loop: at login the server only
// computes HMACs and hashes.
func BenchmarkSCRAMSHA256Exchange(b *testing.B) {
	v := rfcVectors[1]
	u := rfcUsers(b)
	cfg := Config{Lookup: u.lookup, MockSecret: testSecret}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s := newTestServer(b, ScramSHA256, cfg, v.serverNonce)
		if _, _, err := s.Step(ctx, []byte(v.clientFirst)); err != nil {
			b.Fatal(err)
		}
		if _, done, err := s.Step(ctx, []byte(v.clientFinal)); err != nil || !done {
			b.Fatal(err)
		}
	}
}

// BenchmarkSCRAMSHA256UnknownUser is the same exchange for a user that
// does not exist; it should cost about the same.
func BenchmarkSCRAMSHA256UnknownUser(b *testing.B) {
	v := rfcVectors[1]
	cfg := Config{Lookup: users{}.lookup, MockSecret: testSecret}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s := newTestServer(b, ScramSHA256, cfg, v.serverNonce)
		if _, _, err := s.Step(ctx, []byte(v.clientFirst)); err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.Step(ctx, []byte(v.clientFinal)); err == nil {
			b.Fatal("unknown user logged in")
		}
	}
}

// BenchmarkDeriveKeysSHA256 is the PBKDF2 step at 4096 iterations: what
// registration, password change and every PLAIN login pay.
func BenchmarkDeriveKeysSHA256(b *testing.B) {
	salt := []byte("saltsaltsaltsalt")
	for b.Loop() {
		if _, _, err := DeriveKeys(SHA256, "pencil", salt, 4096); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlain is a full PLAIN login at 4096 iterations.
func BenchmarkPlain(b *testing.B) {
	cfg := Config{Lookup: testUsers(b).lookup, TLS: true}
	ctx := context.Background()
	for b.Loop() {
		s := newTestServer(b, Plain, cfg, "")
		if _, done, err := s.Step(ctx, []byte("\x00user\x00pencil")); err != nil || !done {
			b.Fatal(err)
		}
	}
}
