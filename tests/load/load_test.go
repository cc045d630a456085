package load

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"
)

// The exchanges of RFC 5802 §5 and RFC 7677 §3 (user "user", password
// "pencil", no channel binding).
var scramVectors = []struct {
	mech, nonce, serverFirst, clientFinal, serverFinal string
}{
	{
		mech:        "SCRAM-SHA-1",
		nonce:       "fyko+d2lbbFgONRv9qkxdawL",
		serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	},
	{
		mech:        "SCRAM-SHA-256",
		nonce:       "rOprNGfwEbeRWgbNEkqO",
		serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	},
}

func exchange(t *testing.T, mech, password, nonce string, keys *keyCache) *scramClient {
	t.Helper()
	sc, err := newSCRAM(mech, "user", password, keys)
	if err != nil {
		t.Fatal(err)
	}
	sc.nonce = nonce
	if got, want := sc.first(), "n,,n=user,r="+nonce; got != want {
		t.Fatalf("client-first = %q, want %q", got, want)
	}
	return sc
}

func TestSCRAMVectors(t *testing.T) {
	for _, v := range scramVectors {
		t.Run(v.mech, func(t *testing.T) {
			keys := newKeyCache()
			sc := exchange(t, v.mech, "pencil", v.nonce, keys)
			final, err := sc.final(v.serverFirst)
			if err != nil {
				t.Fatal(err)
			}
			if final != v.clientFinal {
				t.Fatalf("client-final = %q, want %q", final, v.clientFinal)
			}
			if err := sc.verify(v.serverFinal); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if len(keys.keys) != 1 {
				t.Fatalf("cache holds %d keys after a verified login, want 1", len(keys.keys))
			}
		})
	}
}

// A second login with the cache must not need the password: with a wrong
// one it still produces the RFC's proof, which shows the keys were reused
// rather than derived again.
func TestSCRAMCacheReusesKeys(t *testing.T) {
	for _, v := range scramVectors {
		t.Run(v.mech, func(t *testing.T) {
			keys := newKeyCache()
			sc := exchange(t, v.mech, "pencil", v.nonce, keys)
			if _, err := sc.final(v.serverFirst); err != nil {
				t.Fatal(err)
			}
			if err := sc.verify(v.serverFinal); err != nil {
				t.Fatal(err)
			}
			again := exchange(t, v.mech, "not the password", v.nonce, keys)
			final, err := again.final(v.serverFirst)
			if err != nil {
				t.Fatal(err)
			}
			if final != v.clientFinal {
				t.Fatalf("cached client-final = %q, want %q", final, v.clientFinal)
			}
			// Without the cache the wrong password gives another proof.
			cold := exchange(t, v.mech, "not the password", v.nonce, nil)
			if final, _ := cold.final(v.serverFirst); final == v.clientFinal {
				t.Fatal("a wrong password without cache produced the right proof")
			}
		})
	}
}

func TestSCRAMRejects(t *testing.T) {
	v := scramVectors[1]
	tests := []struct {
		name, serverFirst, serverFinal string
		want                           error
	}{
		{name: "nonce not extended", serverFirst: "r=" + v.nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"},
		{name: "foreign nonce", serverFirst: "r=abc" + v.nonce + "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"},
		{name: "reserved m", serverFirst: "m=x," + v.serverFirst},
		{name: "no salt", serverFirst: "r=" + v.nonce + "x,i=4096"},
		{name: "bad iterations", serverFirst: "r=" + v.nonce + "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0"},
		{name: "wrong server signature", serverFirst: v.serverFirst, serverFinal: "v=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), want: errServerSignature},
		{name: "server error", serverFirst: v.serverFirst, serverFinal: "e=invalid-proof", want: errFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := newKeyCache()
			sc := exchange(t, v.mech, "pencil", v.nonce, keys)
			_, err := sc.final(tt.serverFirst)
			if tt.serverFinal == "" {
				if err == nil {
					t.Fatal("final accepted a bad server-first")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := sc.verify(tt.serverFinal); !errors.Is(err, tt.want) {
				t.Fatalf("verify = %v, want %v", err, tt.want)
			}
			if len(keys.keys) != 0 {
				t.Fatal("keys cached although the server did not prove itself")
			}
		})
	}
}

func TestParseLoadBody(t *testing.T) {
	const ns = int64(1700000000123456789)
	tests := []struct {
		name, inner string
		id          uint64
		ok          bool
	}{
		{"plain", "<body>load 42 1700000000123456789</body>", 42, true},
		{"stanza-id after body", "<body>load 42 1700000000123456789</body><stanza-id xmlns='urn:xmpp:sid:0' id='x' by='a@localhost'/>", 42, true},
		{"body with namespace", "<archived/><body xmlns='jabber:client'>load 7 1700000000123456789</body>", 7, true},
		{"other message", "<body>hello</body>", 0, false},
		{"truncated", "<body>load 42</body>", 0, false},
		{"not a number", "<body>load x 1700000000123456789</body>", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, at, ok := parseLoadBody(tt.inner)
			if ok != tt.ok || id != tt.id {
				t.Fatalf("parseLoadBody = %d, %v; want %d, %v", id, ok, tt.id, tt.ok)
			}
			if ok && !at.Equal(time.Unix(0, ns)) {
				t.Fatalf("send time = %v", at)
			}
		})
	}
}

func TestStatsCountsOnce(t *testing.T) {
	st := newStats(2)
	u := &user{name: "a", inflight: make(chan struct{}, 1)}
	st.sent(1, u)
	st.sent(2, u)
	st.sent(3, u)
	if got := st.delivered(1, time.Millisecond); got != u {
		t.Fatal("first delivery did not return the sender")
	}
	if got := st.delivered(1, time.Millisecond); got != nil {
		t.Fatal("duplicate returned the sender")
	}
	st.failed(2)
	sent, deliv, dups, errs := st.totals()
	if sent != 3 || deliv != 1 || dups != 1 || errs != 1 {
		t.Fatalf("totals = %d %d %d %d, want 3 1 1 1", sent, deliv, dups, errs)
	}
	if st.pending() != 1 || st.answered() != 3 {
		t.Fatalf("pending %d answered %d, want 1 and 3", st.pending(), st.answered())
	}
	if !strings.Contains(Report{Lost: 1}.String(), "lost 1") {
		t.Fatal("report does not show losses")
	}
}

func TestParseArchiveCount(t *testing.T) {
	tests := []struct {
		name, typ, inner string
		want             int64
	}{
		{"count", "result", "<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><count>1234</count></set></fin>", 1234},
		{"namespaced count", "result", "<fin xmlns='urn:xmpp:mam:2'><set><count xmlns='http://jabber.org/protocol/rsm'>7</count></set></fin>", 7},
		{"no count", "result", "<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'/></fin>", -1},
		{"refused", "error", "<error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := element{Attrs: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: tt.typ}}, Inner: tt.inner}
			got, note := parseArchiveCount(e)
			if got != tt.want {
				t.Fatalf("count = %d (%s), want %d", got, note, tt.want)
			}
			if (got < 0) != (note != "") {
				t.Fatalf("note %q does not match count %d", note, got)
			}
		})
	}
}
