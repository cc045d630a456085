package domain

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// The example exchanges of RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3
// (SCRAM-SHA-256): user "user", password "pencil". The RFCs give the salt,
// the iteration count, the client's proof and the server's signature; a
// verifier derived from the password must accept that proof and produce
// that signature.
var scramVectors = []struct {
	hash            string
	salt            string
	iterations      int
	clientFirstBare string
	serverFirst     string
	clientFinalBare string
	proof           string
	serverSignature string
}{
	{
		hash:            HashSHA1,
		salt:            "QSXCR+Q6sek8bf92",
		iterations:      4096,
		clientFirstBare: "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		serverFirst:     "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinalBare: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
		proof:           "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		serverSignature: "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	},
	{
		hash:            HashSHA256,
		salt:            "W22ZaJ0SNY7soEsUEjb6gQ==",
		iterations:      4096,
		clientFirstBare: "n=user,r=rOprNGfwEbeRWgbNEkqO",
		serverFirst:     "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinalBare: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		proof:           "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		serverSignature: "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	},
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

func TestSCRAMVerifierRFCVectors(t *testing.T) {
	for _, tc := range scramVectors {
		t.Run(tc.hash, func(t *testing.T) {
			v, err := NewSCRAMVerifier(tc.hash, "pencil", b64(t, tc.salt), tc.iterations)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			auth := []byte(tc.clientFirstBare + "," + tc.serverFirst + "," + tc.clientFinalBare)

			clientKey, ok := v.VerifyClientProof(auth, b64(t, tc.proof))
			if !ok {
				t.Fatal("RFC client proof rejected")
			}
			sp, err := SaltedPassword(tc.hash, "pencil", b64(t, tc.salt), tc.iterations)
			if err != nil {
				t.Fatal(err)
			}
			wantKey, err := ClientKey(tc.hash, sp)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(clientKey, wantKey) {
				t.Errorf("recovered ClientKey %x, want %x", clientKey, wantKey)
			}

			sig, err := v.ServerSignature(auth)
			if err != nil {
				t.Fatal(err)
			}
			if got := base64.StdEncoding.EncodeToString(sig); got != tc.serverSignature {
				t.Errorf("server signature %s, want %s", got, tc.serverSignature)
			}

			// A proof from a wrong password must fail.
			bad := b64(t, tc.proof)
			bad[0] ^= 1
			if _, ok := v.VerifyClientProof(auth, bad); ok {
				t.Error("tampered proof accepted")
			}
			other, err := NewSCRAMVerifier(tc.hash, "pencil2", b64(t, tc.salt), tc.iterations)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := other.VerifyClientProof(auth, b64(t, tc.proof)); ok {
				t.Error("proof accepted by the verifier of another password")
			}
		})
	}
}

func TestNormalizePassword(t *testing.T) {
	// OpaqueString maps non-ASCII spaces to U+0020 and applies NFC, so a
	// password typed on different keyboards derives the same verifier.
	composed, err := NormalizePassword("caf\u00e9\u00a0x")
	if err != nil {
		t.Fatal(err)
	}
	decomposed, err := NormalizePassword("cafe\u0301 x")
	if err != nil {
		t.Fatal(err)
	}
	if composed != decomposed || composed != "caf\u00e9 x" {
		t.Errorf("normalised %q and %q, want both %q", composed, decomposed, "caf\u00e9 x")
	}
	salt := []byte("0123456789abcdef")
	v1, err := NewSCRAMVerifier(HashSHA256, "caf\u00e9\u00a0x", salt, MinSCRAMIterations)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := NewSCRAMVerifier(HashSHA256, "cafe\u0301 x", salt, MinSCRAMIterations)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v1.StoredKey, v2.StoredKey) {
		t.Error("equivalent passwords derived different StoredKeys")
	}
}

func TestNewSCRAMVerifierRejects(t *testing.T) {
	salt := []byte("0123456789abcdef")
	tests := []struct {
		name     string
		hash     string
		password string
		salt     []byte
		iter     int
	}{
		{"unknown hash", "SHA-512", "pencil", salt, 4096},
		{"MD5", "MD5", "pencil", salt, 4096},
		{"empty password", HashSHA256, "", salt, 4096},
		{"control character", HashSHA256, "pen\u0007cil", salt, 4096},
		{"few iterations", HashSHA256, "pencil", salt, 4095},
		{"short salt", HashSHA256, "pencil", salt[:7], 4096},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSCRAMVerifier(tc.hash, tc.password, tc.salt, tc.iter)
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("err = %v, want ErrInvalidCredentials", err)
			}
		})
	}
}

func TestNewSCRAMVerifiersUsesReader(t *testing.T) {
	// A deterministic reader stands in for crypto/rand.Reader.
	rand := bytes.NewReader(bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 8))
	vs, err := NewSCRAMVerifiers(rand, "pencil", MinSCRAMIterations)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Hash != HashSHA1 || vs[1].Hash != HashSHA256 {
		t.Fatalf("verifiers %+v, want SHA-1 then SHA-256", vs)
	}
	want := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 2)
	for _, v := range vs {
		if !bytes.Equal(v.Salt, want) {
			t.Errorf("%s salt %x, want %x from the reader", v.Hash, v.Salt, want)
		}
		if err := v.Validate(); err != nil {
			t.Errorf("%s: %v", v.Hash, err)
		}
	}

	// A reader that runs dry must fail, not produce a short salt.
	_, err = NewSCRAMVerifiers(strings.NewReader("short"), "pencil", MinSCRAMIterations)
	if err == nil {
		t.Fatal("exhausted reader accepted")
	}
}

func TestSCRAMVerifierValidate(t *testing.T) {
	good, err := NewSCRAMVerifier(HashSHA1, "pencil", []byte("saltsaltsalt"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	mutate := map[string]func(*SCRAMVerifier){
		"hash":       func(v *SCRAMVerifier) { v.Hash = "SHA-3" },
		"salt":       func(v *SCRAMVerifier) { v.Salt = nil },
		"iterations": func(v *SCRAMVerifier) { v.Iterations = 0 },
		"stored key": func(v *SCRAMVerifier) { v.StoredKey = v.StoredKey[:5] },
		"server key": func(v *SCRAMVerifier) { v.ServerKey = append(v.ServerKey, 0) },
	}
	for name, m := range mutate {
		t.Run(name, func(t *testing.T) {
			v := good
			m(&v)
			if err := v.Validate(); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("Validate = %v, want ErrInvalidCredentials", err)
			}
		})
	}
}
