package sasl

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"testing"
)

// FuzzServerStep feeds arbitrary client-first and client-final messages to
// every mechanism. The server must never panic, must answer every failure
// with an *Error carrying a known condition, and must only report success
// with a ClientKey that hashes to the StoredKey.
func FuzzServerStep(f *testing.F) {
	u := rfcUsers(f)
	v := rfcVectors[1]
	cb := []ChannelBinding{{Type: TLSExporter, Data: bytes.Repeat([]byte{0xcb}, 32)}}
	mechs := []struct {
		name     string
		bindings []ChannelBinding
	}{
		{ScramSHA256, nil},
		{ScramSHA1, cb},
		{ScramSHA256Plus, cb},
		{Plain, nil},
	}

	// Seeds: the published exchanges, a -PLUS exchange, PLAIN.
	f.Add(uint8(0), []byte(v.clientFirst), []byte(v.clientFinal))
	f.Add(uint8(1), []byte(rfcVectors[0].clientFirst), []byte(rfcVectors[0].clientFinal))
	plusHeader, plusBare := "p=tls-exporter,a=user,", "n=user,r=rOprNGfwEbeRWgbNEkqO"
	plusFirst := "r=rOprNGfwEbeRWgbNEkqO" + v.serverNonce + ",s=" + v.salt + ",i=4096"
	plusFinal, _ := scramFinal(f, SHA256, "pencil", plusBare, plusFirst,
		base64.StdEncoding.EncodeToString(append([]byte(plusHeader), cb[0].Data...)), ",x=ext")
	f.Add(uint8(2), []byte(plusHeader+plusBare), []byte(plusFinal))
	f.Add(uint8(0), []byte("y,,n=us=2Cer,r=a,x=y"), []byte("c=eSws,r=a,p=AAAA"))
	f.Add(uint8(0), []byte("n,,m=x,n=user,r=a"), []byte{})
	f.Add(uint8(3), []byte("\x00user\x00pencil"), []byte{})
	f.Add(uint8(3), []byte("a\x00b\x00c\x00"), []byte("x"))

	known := map[Condition]bool{
		MalformedRequest: true, NotAuthorized: true, TemporaryAuthFailure: true,
	}
	f.Fuzz(func(t *testing.T, mech uint8, first, final []byte) {
		m := mechs[int(mech)%len(mechs)]
		cfg := Config{Lookup: u.lookup, MockSecret: testSecret, ChannelBindings: m.bindings, TLS: true}
		s := newTestServer(t, m.name, cfg, v.serverNonce)
		ctx := context.Background()
		for _, in := range [][]byte{first, final} {
			out, done, err := s.Step(ctx, in)
			if err != nil {
				var se *Error
				if !errors.As(err, &se) || !known[se.Condition] || out != nil || done {
					t.Fatalf("failure %v (%T), out=%q done=%v", err, err, out, done)
				}
				if r := s.Result(); r.ClientKey != nil || r.Username != "" {
					t.Fatalf("result after failure: %+v", r)
				}
				return
			}
			if done {
				r := s.Result()
				c := u["user"].creds[r.Hash]
				fn, ferr := r.Hash.fn()
				if ferr != nil || r.Username != "user" || !bytes.Equal(sum(fn, r.ClientKey), c.StoredKey) {
					t.Fatalf("success with result %+v", r)
				}
				return
			}
		}
	})
}
