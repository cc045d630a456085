package sasl

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The published example exchanges: RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677
// §3 (SCRAM-SHA-256), user "user", password "pencil".
var rfcVectors = []struct {
	mech        string
	hash        Hash
	salt        string
	serverNonce string
	clientFirst string
	serverFirst string
	clientFinal string
	serverFinal string
}{
	{
		mech:        ScramSHA1,
		hash:        SHA1,
		salt:        "QSXCR+Q6sek8bf92",
		serverNonce: "3rfcNHYJY1ZVvWVs7j",
		clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	},
	{
		mech:        ScramSHA256,
		hash:        SHA256,
		salt:        "W22ZaJ0SNY7soEsUEjb6gQ==",
		serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	},
}

// rfcUsers registers "user"/"pencil" with the salt of the RFC examples.
func rfcUsers(t testing.TB) users {
	u := users{}
	salt1, _ := base64.StdEncoding.DecodeString(rfcVectors[0].salt)
	salt256, _ := base64.StdEncoding.DecodeString(rfcVectors[1].salt)
	u.register(t, "user", "pencil", salt1, 4096)
	// Each RFC example has its own salt; keep SHA-256 from the second one.
	second := users{}
	second.register(t, "user", "pencil", salt256, 4096)
	u["user"].creds[SHA256] = second["user"].creds[SHA256]
	u["user"].clientKey[SHA256] = second["user"].clientKey[SHA256]
	return u
}

func TestRFCVectors(t *testing.T) {
	u := rfcUsers(t)
	for _, v := range rfcVectors {
		t.Run(v.mech, func(t *testing.T) {
			ctx := context.Background()
			s := newTestServer(t, v.mech, Config{Lookup: u.lookup, MockSecret: testSecret}, v.serverNonce)
			out, done, err := s.Step(ctx, []byte(v.clientFirst))
			if err != nil || done {
				t.Fatalf("client-first: done=%v err=%v", done, err)
			}
			if string(out) != v.serverFirst {
				t.Fatalf("server-first\n got %s\nwant %s", out, v.serverFirst)
			}
			out, done, err = s.Step(ctx, []byte(v.clientFinal))
			if err != nil || !done {
				t.Fatalf("client-final: done=%v err=%v", done, err)
			}
			if string(out) != v.serverFinal {
				t.Fatalf("server-final\n got %s\nwant %s", out, v.serverFinal)
			}
			r := s.Result()
			if r.Username != "user" || r.Authzid != "" || r.Hash != v.hash || r.Mechanism != v.mech || r.ChannelBinding != "" {
				t.Fatalf("result = %+v", r)
			}
			if !bytes.Equal(r.ClientKey, u["user"].clientKey[v.hash]) {
				t.Fatalf("ClientKey = %x, want %x", r.ClientKey, u["user"].clientKey[v.hash])
			}
		})
	}
}

// TestClientFirstRejected covers the first message: GS2 header, channel
// binding negotiation, attribute syntax, saslname escaping, nonces.
func TestClientFirstRejected(t *testing.T) {
	exporter := []ChannelBinding{{Type: TLSExporter, Data: bytes.Repeat([]byte{7}, 32)}}
	tests := []struct {
		name     string
		mech     string
		bindings []ChannelBinding
		msg      string
		cond     Condition
		e        string
	}{
		{"no comma", ScramSHA256, nil, "n", MalformedRequest, errInvalidEncoding},
		{"bad flag", ScramSHA256, nil, "q,,n=user,r=abcdef", MalformedRequest, errInvalidEncoding},
		{"empty cb-name", ScramSHA256Plus, exporter, "p=,,n=user,r=abcdef", MalformedRequest, errInvalidEncoding},
		{"bad cb-name", ScramSHA256Plus, exporter, "p=tls exporter,,n=user,r=abcdef", MalformedRequest, errInvalidEncoding},
		{"header unterminated", ScramSHA256, nil, "n,a=bob", MalformedRequest, errInvalidEncoding},
		{"authzid without a=", ScramSHA256, nil, "n,bob,n=user,r=abcdef", MalformedRequest, errInvalidEncoding},
		{"empty authzid", ScramSHA256, nil, "n,a=,n=user,r=abcdef", MalformedRequest, errInvalidEncoding},
		{"bad authzid escape", ScramSHA256, nil, "n,a=b=2Xob,n=user,r=abcdef", MalformedRequest, errInvalidEncoding},
		{"no attributes", ScramSHA256, nil, "n,,", MalformedRequest, errInvalidEncoding},
		{"nonce first", ScramSHA256, nil, "n,,r=abcdef,n=user", MalformedRequest, errInvalidEncoding},
		{"no nonce", ScramSHA256, nil, "n,,n=user", MalformedRequest, errInvalidEncoding},
		{"empty nonce", ScramSHA256, nil, "n,,n=user,r=", MalformedRequest, errInvalidEncoding},
		{"empty username", ScramSHA256, nil, "n,,n=,r=abcdef", MalformedRequest, errInvalidEncoding},
		{"nonce with space", ScramSHA256, nil, "n,,n=user,r=abc def", MalformedRequest, errInvalidEncoding},
		{"nonce with DEL", ScramSHA256, nil, "n,,n=user,r=abc\x7f", MalformedRequest, errInvalidEncoding},
		{"nonce non-ASCII", ScramSHA256, nil, "n,,n=user,r=abcé", MalformedRequest, errInvalidEncoding},
		{"empty attribute", ScramSHA256, nil, "n,,,n=user,r=abcdef", MalformedRequest, errInvalidEncoding},
		{"attribute not ALPHA", ScramSHA256, nil, "n,,n=user,r=abcdef,1=x", MalformedRequest, errInvalidEncoding},
		{"extension without value", ScramSHA256, nil, "n,,n=user,r=abcdef,x=", MalformedRequest, errInvalidEncoding},
		{"reserved m= first", ScramSHA256, nil, "n,,m=ext,n=user,r=abcdef", MalformedRequest, errExtensionsNotSupported},
		{"reserved m= later", ScramSHA256, nil, "n,,n=user,r=abcdef,m=ext", MalformedRequest, errExtensionsNotSupported},
		{"unknown escape", ScramSHA256, nil, "n,,n=us=41er,r=abcdef", MalformedRequest, errInvalidUsernameEncoding},
		{"lowercase escape", ScramSHA256, nil, "n,,n=us=2cer,r=abcdef", MalformedRequest, errInvalidUsernameEncoding},
		{"truncated escape", ScramSHA256, nil, "n,,n=user=3,r=abcdef", MalformedRequest, errInvalidUsernameEncoding},
		{"bare =", ScramSHA256, nil, "n,,n=us=er,r=abcdef", MalformedRequest, errInvalidUsernameEncoding},
		{"username fails PRECIS", ScramSHA256, nil, "n,,n=us\u0007er,r=abcdef", MalformedRequest, errInvalidUsernameEncoding},
		{"username with space", ScramSHA256, nil, "n,,n=us er,r=abcdef", MalformedRequest, errInvalidUsernameEncoding},
		{"invalid UTF-8", ScramSHA256, nil, "n,,n=\xff\xfe,r=abcdef", MalformedRequest, errInvalidEncoding},
		{"NUL", ScramSHA256, nil, "n,,n=us\x00er,r=abcdef", MalformedRequest, errInvalidEncoding},
		{"too long", ScramSHA256, nil, "n,,n=user,r=" + strings.Repeat("a", maxMessage), MalformedRequest, errInvalidEncoding},
		// RFC 5802 §6: channel-binding negotiation.
		{"p= on non-PLUS", ScramSHA256, exporter, "p=tls-exporter,,n=user,r=abcdef", MalformedRequest, errCBNotSupported},
		{"y when -PLUS was offered", ScramSHA256, exporter, "y,,n=user,r=abcdef", NotAuthorized, errServerDoesSupportCB},
		{"y when -PLUS was offered (SHA-1)", ScramSHA1, exporter, "y,,n=user,r=abcdef", NotAuthorized, errServerDoesSupportCB},
		{"n on -PLUS", ScramSHA256Plus, exporter, "n,,n=user,r=abcdef", MalformedRequest, errOtherError},
		{"y on -PLUS", ScramSHA1Plus, exporter, "y,,n=user,r=abcdef", MalformedRequest, errOtherError},
		{"tls-unique", ScramSHA256Plus, exporter, "p=tls-unique,,n=user,r=abcdef", NotAuthorized, errUnsupportedCBType},
		{"type not available", ScramSHA256Plus, exporter, "p=tls-server-end-point,,n=user,r=abcdef", NotAuthorized, errUnsupportedCBType},
	}
	u := testUsers(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Lookup: u.lookup, MockSecret: testSecret, ChannelBindings: tt.bindings}
			s := newTestServer(t, tt.mech, cfg, "")
			out, done, err := s.Step(context.Background(), []byte(tt.msg))
			if out != nil || done {
				t.Fatalf("out=%q done=%v", out, done)
			}
			wantFailure(t, err, tt.cond, tt.e)
			// The attempt is over: the same error again, whatever comes.
			if _, _, err2 := s.Step(context.Background(), []byte("n,,n=user,r=abcdef")); err2 != err {
				t.Fatalf("second Step: %v, want sticky %v", err2, err)
			}
			if r := s.Result(); r.Username != "" || r.ClientKey != nil {
				t.Fatalf("Result after failure = %+v", r)
			}
		})
	}
}

// TestClientFirstAccepted checks the variants that must pass the first
// step: y without channel-binding support, ignored extensions, escaping.
func TestClientFirstAccepted(t *testing.T) {
	u := testUsers(t)
	u.register(t, "us,er=x", "pencil", []byte("saltsaltsaltsalt"), 4096)
	u.register(t, "juliet", "pencil", []byte("saltsaltsaltsalt"), 4096)
	tests := []struct {
		name, msg, user, authzid string
	}{
		{"y without cb support", "y,,n=user,r=abcdef", "user", ""},
		{"unknown extension ignored", "n,,n=user,r=abcdef,x=whatever", "user", ""},
		{"escaped username", "n,,n=us=2Cer=3Dx,r=abcdef", "us,er=x", ""},
		{"username case-mapped", "n,,n=JULIET,r=abcdef", "juliet", ""},
		{"authzid", "n,a=romeo@example.net,n=juliet,r=abcdef", "juliet", "romeo@example.net"},
		{"escaped authzid", "n,a=a=2Cb=3Dc,n=juliet,r=abcdef", "juliet", "a,b=c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestServer(t, ScramSHA256, Config{Lookup: u.lookup, MockSecret: testSecret}, "")
			sf, _, err := s.Step(ctx, []byte(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			header, bare, _ := strings.Cut(tt.msg, ",n=")
			bare = "n=" + bare
			final, want := scramFinal(t, SHA256, "pencil", bare, string(sf), base64.StdEncoding.EncodeToString([]byte(header+",")), "")
			out, done, err := s.Step(ctx, []byte(final))
			if err != nil || !done || string(out) != want {
				t.Fatalf("final: out=%q done=%v err=%v", out, done, err)
			}
			r := s.Result()
			if r.Username != tt.user || r.Authzid != tt.authzid {
				t.Fatalf("result user=%q authzid=%q", r.Username, r.Authzid)
			}
			if !bytes.Equal(r.ClientKey, u[tt.user].clientKey[SHA256]) {
				t.Fatal("wrong ClientKey")
			}
		})
	}
}

// TestClientFinal covers the second message against the RFC 7677 exchange.
func TestClientFinal(t *testing.T) {
	v := rfcVectors[1]
	nonce := "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	proof := "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	badProof := "eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	bare := strings.TrimPrefix(v.clientFirst, "n,,")
	withExt, withExtFinal := scramFinal(t, SHA256, "pencil", bare, v.serverFirst, "biws", ",x=ext")
	tests := []struct {
		name  string
		msg   string
		cond  Condition // "" for success
		e     string
		final string
	}{
		{"published", v.clientFinal, "", "", v.serverFinal},
		{"extension before proof", withExt, "", "", withExtFinal},
		{"wrong proof", "c=biws,r=" + nonce + ",p=" + badProof, NotAuthorized, errInvalidProof, ""},
		{"c= of another header", "c=eSws,r=" + nonce + ",p=" + proof, NotAuthorized, errChannelBindingsDontMatch, ""},
		{"c= with cb data on non-PLUS", "c=" + base64.StdEncoding.EncodeToString([]byte("n,,x")) + ",r=" + nonce + ",p=" + proof, NotAuthorized, errChannelBindingsDontMatch, ""},
		{"c= not base64", "c=b!ws,r=" + nonce + ",p=" + proof, MalformedRequest, errInvalidEncoding, ""},
		{"c= non-canonical base64", "c=biwr,r=" + nonce + ",p=" + proof, NotAuthorized, errChannelBindingsDontMatch, ""},
		{"other nonce", "c=biws,r=" + nonce + "x,p=" + proof, NotAuthorized, errOtherError, ""},
		{"client nonce only", "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=" + proof, NotAuthorized, errOtherError, ""},
		{"no proof", "c=biws,r=" + nonce, MalformedRequest, errInvalidEncoding, ""},
		{"proof not last", "c=biws,p=" + proof + ",r=" + nonce, MalformedRequest, errInvalidEncoding, ""},
		{"nonce first", "r=" + nonce + ",c=biws,p=" + proof, MalformedRequest, errInvalidEncoding, ""},
		{"repeated nonce", "c=biws,r=" + nonce + ",r=" + nonce + ",p=" + proof, MalformedRequest, errInvalidEncoding, ""},
		{"repeated proof", "c=biws,r=" + nonce + ",p=" + proof + ",p=" + proof, MalformedRequest, errInvalidEncoding, ""},
		{"m= extension", "c=biws,r=" + nonce + ",m=x,p=" + proof, MalformedRequest, errExtensionsNotSupported, ""},
		{"proof not base64", "c=biws,r=" + nonce + ",p=!!!!", MalformedRequest, errInvalidEncoding, ""},
		{"proof short", "c=biws,r=" + nonce + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 20)), MalformedRequest, errInvalidEncoding, ""},
		{"trailing comma", v.clientFinal + ",", MalformedRequest, errInvalidEncoding, ""},
		{"NUL", "c=biws,r=" + nonce + "\x00,p=" + proof, MalformedRequest, errInvalidEncoding, ""},
		{"empty", "", MalformedRequest, errInvalidEncoding, ""},
	}
	u := rfcUsers(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestServer(t, ScramSHA256, Config{Lookup: u.lookup, MockSecret: testSecret}, v.serverNonce)
			if _, _, err := s.Step(ctx, []byte(v.clientFirst)); err != nil {
				t.Fatal(err)
			}
			out, done, err := s.Step(ctx, []byte(tt.msg))
			if tt.cond == "" {
				if err != nil || !done || string(out) != tt.final {
					t.Fatalf("out=%q done=%v err=%v", out, done, err)
				}
				if !bytes.Equal(s.Result().ClientKey, u["user"].clientKey[SHA256]) {
					t.Fatal("wrong ClientKey")
				}
				// A third message is a protocol error.
				_, _, err = s.Step(ctx, []byte(tt.msg))
				wantFailure(t, err, MalformedRequest, "")
				return
			}
			if out != nil || done {
				t.Fatalf("out=%q done=%v", out, done)
			}
			wantFailure(t, err, tt.cond, tt.e)
			if r := s.Result(); r.ClientKey != nil {
				t.Fatal("Result after failure carries a ClientKey")
			}
		})
	}
}

// TestUnknownUser checks that an unknown name gets a stable, made-up salt
// and then fails exactly like a wrong password.
func TestUnknownUser(t *testing.T) {
	ctx := context.Background()
	u := rfcUsers(t)
	cfg := Config{Lookup: u.lookup, MockSecret: testSecret}
	first := func(name string, cfg Config) string {
		s := newTestServer(t, ScramSHA256, cfg, "SNONCE")
		out, _, err := s.Step(ctx, []byte("n,,n="+name+",r=abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	a, b := first("nobody", cfg), first("nobody", cfg)
	if a != b {
		t.Fatalf("salt for an unknown user changes between attempts:\n%s\n%s", a, b)
	}
	if c := first("somebody", cfg); c == a {
		t.Fatal("two unknown users get the same salt")
	}
	other := cfg
	other.MockSecret = bytes.Repeat([]byte{1}, 32)
	if c := first("nobody", other); c == a {
		t.Fatal("mock salt does not depend on the secret")
	}
	if !strings.HasSuffix(a, ",i=4096") || len(strings.Split(a, ",")[1]) != len("s=")+24 {
		t.Fatalf("mock server-first %q does not look like a real one", a)
	}

	// Both attempts end alike: not-authorized, invalid-proof.
	var errs []error
	for _, name := range []string{"nobody", "user"} {
		s := newTestServer(t, ScramSHA256, cfg, "SNONCE")
		bare := "n=" + name + ",r=abcdef"
		sf, _, err := s.Step(ctx, []byte("n,,"+bare))
		if err != nil {
			t.Fatal(err)
		}
		final, _ := scramFinal(t, SHA256, "not the password", bare, string(sf), "biws", "")
		_, _, err = s.Step(ctx, []byte(final))
		wantFailure(t, err, NotAuthorized, errInvalidProof)
		errs = append(errs, err)
	}
	if !errors.Is(errs[0], ErrUnknownUser) || errors.Is(errs[1], ErrUnknownUser) {
		t.Fatalf("cause for logs: unknown=%v wrong-password=%v", errs[0], errs[1])
	}
}

// lookupErr is a CredentialLookup that always fails with err, or returns c.
func lookupErr(c Credentials, err error) CredentialLookup {
	return func(context.Context, string, Hash) (Credentials, error) { return c, err }
}

func TestLookupFailures(t *testing.T) {
	good := testUsers(t)["user"].creds[SHA256]
	few := good
	few.Iterations = 1000
	shortSalt := good
	shortSalt.Salt = []byte("salt")
	wrongSize := good
	wrongSize.StoredKey = good.StoredKey[:20]
	tests := []struct {
		name   string
		lookup CredentialLookup
		cond   Condition
	}{
		{"account disabled", lookupErr(Credentials{}, AccountDisabled), AccountDisabled},
		{"credentials expired, wrapped", lookupErr(Credentials{}, fmt.Errorf("user x: %w", CredentialsExpired)), CredentialsExpired},
		{"store down", lookupErr(Credentials{}, errors.New("disk on fire")), TemporaryAuthFailure},
		{"too few iterations", lookupErr(few, nil), TemporaryAuthFailure},
		{"short salt", lookupErr(shortSalt, nil), TemporaryAuthFailure},
		{"key of wrong size", lookupErr(wrongSize, nil), TemporaryAuthFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, ScramSHA256, Config{Lookup: tt.lookup, MockSecret: testSecret}, "")
			_, _, err := s.Step(context.Background(), []byte("n,,n=user,r=abcdef"))
			wantFailure(t, err, tt.cond, errOtherError)
		})
	}
}

func TestLookupGetsContextAndHash(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "marker")
	u := testUsers(t)
	for _, mech := range []string{ScramSHA1, ScramSHA256} {
		var gotHash Hash
		var gotCtx bool
		lookup := func(ctx context.Context, name string, h Hash) (Credentials, error) {
			gotHash, gotCtx = h, ctx.Value(key{}) == "marker"
			return u.lookup(ctx, name, h)
		}
		s := newTestServer(t, mech, Config{Lookup: lookup, MockSecret: testSecret}, "")
		if _, _, err := s.Step(ctx, []byte("n,,n=user,r=abcdef")); err != nil {
			t.Fatal(err)
		}
		want := SHA256
		if mech == ScramSHA1 {
			want = SHA1
		}
		if gotHash != want || !gotCtx {
			t.Fatalf("%s: lookup got hash %q, context passed %v", mech, gotHash, gotCtx)
		}
	}
}

func TestEmptyInitialResponse(t *testing.T) {
	v := rfcVectors[1]
	ctx := context.Background()
	s := newTestServer(t, ScramSHA256, Config{Lookup: rfcUsers(t).lookup, MockSecret: testSecret}, v.serverNonce)
	out, done, err := s.Step(ctx, nil)
	if err != nil || done || out == nil || len(out) != 0 {
		t.Fatalf("no initial response: out=%q done=%v err=%v, want empty challenge", out, done, err)
	}
	if out, _, err = s.Step(ctx, []byte(v.clientFirst)); err != nil || string(out) != v.serverFirst {
		t.Fatalf("out=%q err=%v", out, err)
	}
	if _, done, err = s.Step(ctx, []byte(v.clientFinal)); err != nil || !done {
		t.Fatalf("done=%v err=%v", done, err)
	}
}

func TestRandomServerNonce(t *testing.T) {
	ctx := context.Background()
	nonces := map[string]bool{}
	for range 3 {
		s := newTestServer(t, ScramSHA256, Config{Lookup: testUsers(t).lookup, MockSecret: testSecret}, "")
		out, _, err := s.Step(ctx, []byte("n,,n=user,r=abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		r := strings.TrimPrefix(strings.Split(string(out), ",")[0], "r=")
		if !strings.HasPrefix(r, "abcdef") || len(r) < len("abcdef")+24 || !printable(r) {
			t.Fatalf("server nonce %q", r)
		}
		nonces[r] = true
	}
	if len(nonces) != 3 {
		t.Fatal("server nonces repeat")
	}
}

func TestNewServer(t *testing.T) {
	lookup := testUsers(t).lookup
	cb := []ChannelBinding{{Type: TLSExporter, Data: make([]byte, 32)}}
	tests := []struct {
		name string
		mech string
		cfg  Config
		cond Condition // "" for success, "-" for a configuration error
	}{
		{"SCRAM-SHA-256", ScramSHA256, Config{Lookup: lookup, MockSecret: testSecret}, ""},
		{"SCRAM-SHA-1-PLUS", ScramSHA1Plus, Config{Lookup: lookup, MockSecret: testSecret, ChannelBindings: cb}, ""},
		{"PLAIN over TLS", Plain, Config{Lookup: lookup, TLS: true}, ""},
		{"unknown mechanism", "DIGEST-MD5", Config{Lookup: lookup, MockSecret: testSecret}, InvalidMechanism},
		{"lower case name", "scram-sha-256", Config{Lookup: lookup, MockSecret: testSecret}, InvalidMechanism},
		{"-PLUS without bindings", ScramSHA256Plus, Config{Lookup: lookup, MockSecret: testSecret}, InvalidMechanism},
		{"PLAIN without TLS", Plain, Config{Lookup: lookup}, EncryptionRequired},
		{"no lookup", ScramSHA256, Config{MockSecret: testSecret}, "-"},
		{"no mock secret", ScramSHA256, Config{Lookup: lookup}, "-"},
		{"bad plain hash", Plain, Config{Lookup: lookup, TLS: true, PlainHash: "MD5"}, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewServer(tt.mech, tt.cfg)
			switch tt.cond {
			case "":
				if err != nil || s.Mechanism() != tt.mech {
					t.Fatalf("err=%v", err)
				}
			case "-":
				var se *Error
				if err == nil || errors.As(err, &se) {
					t.Fatalf("want configuration error, got %v", err)
				}
			default:
				wantFailure(t, err, tt.cond, "")
			}
		})
	}
}

func TestMechanisms(t *testing.T) {
	cb := []ChannelBinding{{Type: TLSExporter}}
	tests := []struct {
		tls      bool
		bindings []ChannelBinding
		want     string
	}{
		{false, nil, "SCRAM-SHA-256 SCRAM-SHA-1"},
		{true, nil, "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN"},
		{true, cb, "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN"},
	}
	for _, tt := range tests {
		if got := strings.Join(Mechanisms(tt.tls, tt.bindings), " "); got != tt.want {
			t.Errorf("Mechanisms(%v, %d bindings) = %s, want %s", tt.tls, len(tt.bindings), got, tt.want)
		}
	}
}

func TestConditionOf(t *testing.T) {
	tests := []struct {
		err  error
		want Condition
	}{
		{nil, ""},
		{errors.New("x"), TemporaryAuthFailure},
		{AccountDisabled, AccountDisabled},
		{fail(NotAuthorized, errInvalidProof, nil), NotAuthorized},
		{errors.Join(errors.New("ctx"), fail(MalformedRequest, "", nil)), MalformedRequest},
	}
	for _, tt := range tests {
		if got := ConditionOf(tt.err); got != tt.want {
			t.Errorf("ConditionOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
