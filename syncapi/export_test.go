package syncapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/userdata"
)

// download fetches an export with a bearer token; it returns the response
// (body read into raw) for the caller to check.
func (e *env) download(path, token string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.ts.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, raw
}

func TestExport(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	bob := e.register("bob@example.org", "battery staple")
	at := e.login(alice, "correct horse")
	bt := e.login(bob, "battery staple")
	e.call("PUT", "/api/v1/prefs", at, prefsBody{Default: "always"}, nil)
	e.chat(alice, 25)
	e.archiveMsg(bob, "dave@example.org", domain.DirectionIn, "only for bob", minute(1))

	tests := []struct {
		name, query, mediaType, ext string
		token                       string
		user                        string
		messages                    int
	}{
		{"alice xep0227", "?format=xep0227", "application/xml; charset=utf-8", ".xml", at, "alice@example.org", 25},
		{"alice default format", "", "application/xml; charset=utf-8", ".xml", at, "alice@example.org", 25},
		{"alice jsonl", "?format=jsonl", "application/jsonl; charset=utf-8", ".jsonl", at, "alice@example.org", 25},
		// There is no parameter naming a user: bob's token exports bob,
		// whatever the query says.
		{"bob", "?format=jsonl&user=alice@example.org", "application/jsonl; charset=utf-8", ".jsonl", bt, "bob@example.org", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := e.download("/api/v1/export"+tc.query, tc.token)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tc.mediaType {
				t.Errorf("Content-Type %q, want %q", ct, tc.mediaType)
			}
			wantName := `attachment; filename="verlauf-` + tc.user + "-2025-06-01" + tc.ext + `"`
			if cd := resp.Header.Get("Content-Disposition"); cd != wantName {
				t.Errorf("Content-Disposition %q, want %q", cd, wantName)
			}
			m, err := userdata.Verify(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if m.User != tc.user || m.Counts[userdata.KindMessage] != tc.messages || m.Counts[userdata.KindAccount] != 1 {
				t.Errorf("manifest %+v, want user %s with %d messages", m, tc.user, tc.messages)
			}
			// The trailer repeats the manifest at the end of the file.
			var tm userdata.Manifest
			if err := json.Unmarshal([]byte(resp.Trailer.Get(manifestTrailer)), &tm); err != nil || !reflect.DeepEqual(tm, m) {
				t.Errorf("trailer %q (%v), want %+v", resp.Trailer.Get(manifestTrailer), err, m)
			}
			hasAlice := strings.Contains(string(raw), "msg 3 &amp;")
			if hasAlice != (tc.user == "alice@example.org") {
				t.Errorf("export of %s holds alice's messages: %v", tc.user, hasAlice)
			}
			if tc.user == "bob@example.org" && !strings.Contains(string(raw), "only for bob") {
				t.Error("bob's export lacks his message")
			}
		})
	}

	for _, tc := range []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"no token", "/api/v1/export?format=jsonl", "", 401, "unauthorized"},
		{"unknown token", "/api/v1/export", strings.Repeat("A", 43), 401, "invalid_token"},
		{"bad format", "/api/v1/export?format=csv", at, 400, "invalid_parameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, code := e.call("GET", tc.path, tc.token, nil, nil); st != tc.status || code != tc.code {
				t.Errorf("%d %s, want %d %s", st, code, tc.status, tc.code)
			}
		})
	}

	e.clock.add(DefaultTokenTTL)
	if st, code := e.call("GET", "/api/v1/export", at, nil, nil); st != 401 || code != "token_expired" {
		t.Errorf("expired token: %d %s", st, code)
	}
}

// TestExportLocked: a token whose keys were wiped (the keys released
// behind its back) gets a JSON error, not a broken file.
func TestExportLocked(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	at := e.login(alice, "correct horse")
	e.arch.Keys().Release(alice)
	if st, code := e.call("GET", "/api/v1/export", at, nil, nil); st != 401 || code != "session_locked" {
		t.Errorf("locked: %d %s, want 401 session_locked", st, code)
	}
}

func TestExportUnconfigured(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	srv, err := New(Config{Accounts: e.acc, Archive: e.arch, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewTLSServer(srv.Handler())
	defer ts.Close()
	// e's own server stays as it is (its cleanup closes it); this one
	// lacks the event store.
	other := *e
	other.ts, other.srv = ts, srv
	tok := other.login(alice, "correct horse")
	if st, code := other.call("GET", "/api/v1/export", tok, nil, nil); st != 503 || code != "export_unavailable" {
		t.Errorf("%d %s, want 503 export_unavailable", st, code)
	}
}
