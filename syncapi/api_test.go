package syncapi

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

var base = time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)

func minute(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }

// chat archives n messages of user, one a minute: bob on even indexes
// (in), carol on odd ones (out).
func (e *env) chat(user jid.JID, n int) []string {
	e.t.Helper()
	out := make([]string, n)
	for i := range n {
		partner, dir := "bob@example.org", domain.DirectionIn
		if i%2 == 1 {
			partner, dir = "carol@example.org", domain.DirectionOut
		}
		out[i] = e.archiveMsg(user, partner, dir, fmt.Sprintf("msg %d &amp; more", i), minute(i)).String()
	}
	return out
}

func TestLogin(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{LoginFailures: 3, LoginPenalty: time.Minute})
	alice := e.register("alice@example.org", "correct horse")
	tests := []struct {
		name     string
		jid, pw  string
		status   int
		code     string
		unlocked bool
	}{
		{"ok", "alice@example.org", "correct horse", 200, "", true},
		{"wrong password", "alice@example.org", "wrong", 401, "auth_failed", false},
		{"unknown user", "nobody@example.org", "correct horse", 401, "auth_failed", false},
		{"not a JID", "@@", "x", 401, "auth_failed", false},
		{"empty password", "alice@example.org", "", 401, "auth_failed", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var lr loginResponse
			st, code := e.call("POST", "/api/v1/login", "", loginRequest{JID: tc.jid, Password: tc.pw}, &lr)
			if st != tc.status || code != tc.code {
				t.Fatalf("got %d %q, want %d %q", st, code, tc.status, tc.code)
			}
			if tc.status == 200 {
				if len(lr.Token) != 43 || !lr.Expires.Equal(e.clock.Now().Add(DefaultTokenTTL)) || lr.JID != "alice@example.org" {
					t.Errorf("login answer %+v", lr)
				}
				if !e.arch.Keys().Unlocked(alice) {
					t.Error("keys not unlocked by the login")
				}
				if st, _ := e.call("POST", "/api/v1/logout", lr.Token, nil, nil); st != http.StatusNoContent {
					t.Errorf("logout: %d", st)
				}
				if e.arch.Keys().Unlocked(alice) {
					t.Error("keys still unlocked after logout")
				}
				if st, code := e.call("GET", "/api/v1/prefs", lr.Token, nil, nil); st != 401 || code != "invalid_token" {
					t.Errorf("token after logout: %d %s", st, code)
				}
			}
		})
	}
	if st, code := e.call("POST", "/api/v1/login", "", map[string]any{"jid": "alice@example.org", "password": "x", "extra": 1}, nil); st != 400 || code != "bad_request" {
		t.Errorf("unknown field: %d %s", st, code)
	}
}

func TestLoginThrottle(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{LoginFailures: 3, LoginPenalty: time.Minute})
	alice := e.register("alice@example.org", "correct horse")
	e.register("bob@example.org", "battery staple")
	for range 3 {
		if st, code := e.call("POST", "/api/v1/login", "", loginRequest{JID: alice.String(), Password: "guess"}, nil); st != 401 {
			t.Fatalf("guess: %d %s", st, code)
		}
	}
	// Blocked now, even with the right password, without checking it.
	if st, code := e.call("POST", "/api/v1/login", "", loginRequest{JID: alice.String(), Password: "correct horse"}, nil); st != 429 || code != "too_many_attempts" {
		t.Fatalf("after 3 failures: %d %s, want 429 too_many_attempts", st, code)
	}
	// Another account from the same address is not blocked yet (the
	// address allows 4×).
	e.login(jid.MustParse("bob@example.org"), "battery staple")
	e.clock.add(time.Minute + time.Second)
	e.login(alice, "correct horse")

	// Per address: 12 failures spread over accounts block the address.
	for i := range 12 {
		e.call("POST", "/api/v1/login", "", loginRequest{JID: fmt.Sprintf("u%d@example.org", i), Password: "guess"}, nil)
	}
	if st, code := e.call("POST", "/api/v1/login", "", loginRequest{JID: "bob@example.org", Password: "battery staple"}, nil); st != 429 || code != "too_many_attempts" {
		t.Fatalf("address after 12 failures: %d %s", st, code)
	}
}

func TestTokens(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	bob := e.register("bob@example.org", "battery staple")
	at := e.login(alice, "correct horse")
	bt := e.login(bob, "battery staple")
	e.call("PUT", "/api/v1/prefs", at, prefsBody{Default: "always"}, nil)
	e.call("PUT", "/api/v1/prefs", bt, prefsBody{Default: "always"}, nil)
	aliceIDs := e.chat(alice, 3)
	bobIDs := []string{e.archiveMsg(bob, "dave@example.org", domain.DirectionIn, "for bob", minute(1)).String()}

	// Each token reads its own user's data only; there is no parameter
	// that names a user.
	for _, tc := range []struct {
		name, token string
		want        []string
	}{{"alice", at, aliceIDs}, {"bob", bt, bobIDs}} {
		var h historyResponse
		if st, code := e.call("GET", "/api/v1/history?with=bob@example.org&max=50", tc.token, nil, &h); st != 200 {
			t.Fatalf("%s: %d %s", tc.name, st, code)
		}
		var s syncResponse
		e.call("GET", "/api/v1/sync", tc.token, nil, &s)
		if !slices.Equal(ids(s.Messages), tc.want) {
			t.Errorf("%s syncs %v, want %v", tc.name, ids(s.Messages), tc.want)
		}
	}

	tests := []struct {
		name   string
		header string
		code   string
	}{
		{"no token", "", "unauthorized"},
		{"unknown token", "Bearer " + strings.Repeat("A", 43), "invalid_token"},
		{"not bearer", "Basic YWxpY2U6eA==", "unauthorized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/history", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := e.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("status %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	e.clock.add(DefaultTokenTTL)
	if st, code := e.call("GET", "/api/v1/history", at, nil, nil); st != 401 || code != "token_expired" {
		t.Errorf("expired: %d %s, want 401 token_expired", st, code)
	}
	if e.arch.Keys().Unlocked(alice) {
		t.Error("alice's keys still unlocked after her token expired")
	}
	if st, code := e.call("GET", "/api/v1/nothing", at, nil, nil); st != 404 || code != "not_found" {
		t.Errorf("unknown path: %d %s", st, code)
	}
}

func TestHistory(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	tok := e.login(alice, "correct horse")
	all := e.chat(alice, 20)
	span := func(from, to, step int) []string {
		var out []string
		for i := from; i <= to; i += step {
			out = append(out, all[i])
		}
		return out
	}
	tests := []struct {
		name     string
		query    url.Values
		want     []string
		complete bool
		count    int
	}{
		{"first page", url.Values{"max": {"5"}}, span(0, 4, 1), false, 20},
		{"next page", url.Values{"max": {"5"}, "after": {all[4]}}, span(5, 9, 1), false, 20},
		{"last page", url.Values{"max": {"5"}, "last": {"true"}}, span(15, 19, 1), false, 20},
		{"page before", url.Values{"max": {"5"}, "before": {all[15]}}, span(10, 14, 1), false, 20},
		{"with bob", url.Values{"with": {"bob@example.org"}}, span(0, 18, 2), true, 10},
		{"with carol, range", url.Values{"with": {"carol@example.org"}, "start": {minute(5).Format(time.RFC3339)}, "end": {minute(9).Format(time.RFC3339)}}, span(5, 9, 2), true, 3},
		{"start only", url.Values{"start": {minute(17).Format(time.RFC3339)}}, span(17, 19, 1), true, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h historyResponse
			if st, code := e.call("GET", "/api/v1/history?"+tc.query.Encode(), tok, nil, &h); st != 200 {
				t.Fatalf("%d %s", st, code)
			}
			if !slices.Equal(ids(h.Messages), tc.want) || h.Complete != tc.complete || h.Count != tc.count {
				t.Fatalf("got %v complete %v count %d, want %v %v %d", ids(h.Messages), h.Complete, h.Count, tc.want, tc.complete, tc.count)
			}
			if len(tc.want) > 0 && (h.First != tc.want[0] || h.Last != tc.want[len(tc.want)-1]) {
				t.Errorf("first/last %s/%s", h.First, h.Last)
			}
			for _, m := range h.Messages {
				i := slices.Index(all, m.ID)
				wantPartner, wantDir := "bob@example.org", "in"
				if i%2 == 1 {
					wantPartner, wantDir = "carol@example.org", "out"
				}
				if m.Body != fmt.Sprintf("msg %d & more", i) || m.Partner != wantPartner || m.Direction != wantDir ||
					!m.Time.Equal(minute(i)) || !strings.Contains(m.Stanza, "<body>") {
					t.Errorf("message %d: %+v", i, m)
				}
			}
		})
	}
	bad := []struct{ query, code string }{
		{"max=0", "invalid_parameter"},
		{"after=nope", "invalid_parameter"},
		{"start=yesterday", "invalid_parameter"},
		{"with=@", "invalid_parameter"},
		{"after=" + uuid.Must(uuid.NewV7()).String(), "item_not_found"},
	}
	for _, b := range bad {
		if st, code := e.call("GET", "/api/v1/history?"+b.query, tok, nil, nil); code != b.code || st < 400 {
			t.Errorf("%s: %d %s, want %s", b.query, st, code, b.code)
		}
	}
}

// syncAll reads /sync from cursor until nothing more, max at a time.
func (e *env) syncAll(tok, cursor string, max int) ([]string, string) {
	e.t.Helper()
	var got []string
	for {
		var s syncResponse
		if st, code := e.call("GET", "/api/v1/sync?"+url.Values{"since": {cursor}, "max": {fmt.Sprint(max)}}.Encode(), tok, nil, &s); st != 200 {
			e.t.Fatalf("sync: %d %s", st, code)
		}
		got = append(got, ids(s.Messages)...)
		cursor = s.Cursor
		if !s.More {
			return got, cursor
		}
	}
}

func TestSyncAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, Config{})
	alice := e.register("alice@example.org", "correct horse")
	tok := e.login(alice, "correct horse")
	first := e.chat(alice, 7)
	got, cursor := e.syncAll(tok, "", 3)
	if !slices.Equal(got, first) {
		t.Fatalf("first sync %v, want %v", got, first)
	}
	// Messages arrive while the client is away; the server restarts.
	second := []string{
		e.archiveMsg(alice, "bob@example.org", domain.DirectionIn, "late 1", minute(30)).String(),
		e.archiveMsg(alice, "bob@example.org", domain.DirectionIn, "late 2", minute(31)).String(),
	}
	e.close()
	e = newEnv(t, dir, Config{})
	third := e.archiveMsg(alice, "carol@example.org", domain.DirectionIn, "while locked", minute(32)).String()
	tok = e.login(alice, "correct horse")
	got, cursor = e.syncAll(tok, cursor, 2)
	if want := append(second, third); !slices.Equal(got, want) {
		t.Fatalf("after restart %v, want %v", got, want)
	}
	if got, _ := e.syncAll(tok, cursor, 2); len(got) != 0 {
		t.Errorf("caught up, yet sync returns %v", got)
	}
	if st, code := e.call("GET", "/api/v1/sync?since=x", tok, nil, nil); st != 400 || code != "invalid_parameter" {
		t.Errorf("bad cursor: %d %s", st, code)
	}
}

func TestSyncLongPoll(t *testing.T) {
	for _, notify := range []bool{false, true} {
		t.Run(fmt.Sprintf("notify=%v", notify), func(t *testing.T) {
			cfg := Config{}
			if notify {
				// Polling would not wake it within the test: only the
				// notification can.
				cfg.PollInterval = time.Hour
			}
			e := newEnv(t, t.TempDir(), cfg)
			alice := e.register("alice@example.org", "correct horse")
			tok := e.login(alice, "correct horse")
			e.chat(alice, 2)
			_, cursor := e.syncAll(tok, "", 10)

			type result struct {
				s   syncResponse
				err string
			}
			done := make(chan result, 1)
			go func() {
				var s syncResponse
				req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/sync?wait=50s&since="+cursor, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := e.ts.Client().Do(req)
				if err != nil {
					done <- result{err: err.Error()}
					return
				}
				defer resp.Body.Close()
				if err := jsonDecode(resp, &s); err != nil {
					done <- result{err: err.Error()}
					return
				}
				done <- result{s: s}
			}()
			// The request must be waiting before the message is stored,
			// or the test proves nothing: wait until its notification
			// channel exists.
			waitFor(t, func() bool {
				e.srv.notifier.mu.Lock()
				defer e.srv.notifier.mu.Unlock()
				return e.srv.notifier.m[alice.String()] != nil
			})
			id := e.archiveMsg(alice, "bob@example.org", domain.DirectionIn, "live", minute(50)).String()
			if notify {
				ev := eventstore.RecordedEvent{Stream: domain.ArchiveStream(alice)}
				if err := e.srv.HandleEvent(context.Background(), ev); err != nil {
					t.Fatal(err)
				}
			}
			r := <-done
			if r.err != "" {
				t.Fatal(r.err)
			}
			if !slices.Equal(ids(r.s.Messages), []string{id}) || r.s.Messages[0].Body != "live" {
				t.Fatalf("long-poll got %+v", r.s)
			}
		})
	}
}

func TestSyncEventStream(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	tok := e.login(alice, "correct horse")
	first := e.chat(alice, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/api/v1/sync", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() (string, string) {
		var id, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			case line == "" && data != "":
				return id, data
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return "", ""
	}
	var cursors []string
	for _, want := range first {
		id, data := next()
		if !strings.Contains(data, want) {
			t.Fatalf("event %s, want message %s", data, want)
		}
		cursors = append(cursors, id)
	}
	live := e.archiveMsg(alice, "bob@example.org", domain.DirectionIn, "live", minute(50)).String()
	if _, data := next(); !strings.Contains(data, live) {
		t.Fatalf("live event %s, want %s", data, live)
	}
	// The event ids are sync cursors.
	if got, _ := e.syncAll(tok, cursors[1], 10); !slices.Equal(got, []string{first[2], live}) {
		t.Errorf("from the second event's id: %v", got)
	}
}

func TestPrefs(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	tok := e.login(alice, "correct horse")
	var p prefsBody
	e.call("GET", "/api/v1/prefs", tok, nil, &p)
	if p.Default != "never" || len(p.Always) != 0 || len(p.Never) != 0 {
		t.Errorf("initial prefs %+v, want history off", p)
	}
	set := prefsBody{Default: "roster", Always: []string{"Bob@Example.org"}, Never: []string{"carol@example.org"}}
	if st, code := e.call("PUT", "/api/v1/prefs", tok, set, &p); st != 200 {
		t.Fatalf("%d %s", st, code)
	}
	mam, err := e.arch.Prefs(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	var got prefsBody
	e.call("GET", "/api/v1/prefs", tok, nil, &got)
	if want := toPrefs(mam); got.Default != want.Default || !slices.Equal(got.Always, want.Always) || !slices.Equal(got.Never, want.Never) ||
		!slices.Equal(got.Always, []string{"bob@example.org"}) || got.Default != "roster" {
		t.Errorf("API prefs %+v, MAM prefs %+v", got, mam)
	}
	for _, bad := range []prefsBody{{Default: "sometimes"}, {Default: "always", Always: []string{"@"}}, {Default: "always", Always: []string{"x@y"}, Never: []string{"x@y"}}} {
		if st, code := e.call("PUT", "/api/v1/prefs", tok, bad, nil); st != 400 || code != "invalid_argument" {
			t.Errorf("%+v: %d %s", bad, st, code)
		}
	}
}

func TestForget(t *testing.T) {
	tests := []struct {
		name string
		body map[string]any
		gone func(i int) bool
	}{
		{"all", map[string]any{"all": true}, func(int) bool { return true }},
		{"range", map[string]any{"start": minute(3), "end": minute(6)}, func(i int) bool { return i >= 3 && i <= 6 }},
		{"partner", map[string]any{"with": "carol@example.org"}, func(i int) bool { return i%2 == 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, t.TempDir(), Config{})
			alice := e.register("alice@example.org", "correct horse")
			tok := e.login(alice, "correct horse")
			all := e.chat(alice, 10)
			_, cursor := e.syncAll(tok, "", 100)
			var gone, kept []string
			for i, id := range all {
				if tc.gone(i) {
					gone = append(gone, id)
				} else {
					kept = append(kept, id)
				}
			}
			var fr forgetResponse
			if st, code := e.call("POST", "/api/v1/forget", tok, tc.body, &fr); st != 200 {
				t.Fatalf("%d %s", st, code)
			}
			if fr.Count != len(gone) || fr.FirstID != gone[0] || fr.LastID != gone[len(gone)-1] || fr.Keys == 0 {
				t.Errorf("answer %+v, want %d from %s to %s", fr, len(gone), gone[0], gone[len(gone)-1])
			}
			var h historyResponse
			e.call("GET", "/api/v1/history?max=100", tok, nil, &h)
			if !slices.Equal(ids(h.Messages), kept) {
				t.Errorf("history after forget %v, want %v", ids(h.Messages), kept)
			}
			if got, _ := e.syncAll(tok, "", 3); !slices.Equal(got, kept) {
				t.Errorf("sync from the start %v, want %v", got, kept)
			}
			if got, _ := e.syncAll(tok, cursor, 3); len(got) != 0 {
				t.Errorf("a synced client gets %v again after forget", got)
			}
			// The sealed bytes of every forgotten record name a key the
			// key store no longer has.
			evs, err := e.store.ReadStream(ctx, domain.ArchiveStream(alice), 0, eventstore.Forwards, math.MaxInt)
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, ev := range evs {
				if ev.Type != domain.TypeArchiveMessageStored {
					continue
				}
				p, err := domain.Decode(ev.Event)
				if err != nil {
					t.Fatal(err)
				}
				ms := p.(domain.ArchiveMessageStored)
				if !slices.Contains(gone, ms.ArchiveID.String()) {
					continue
				}
				checked++
				if _, ok, err := e.ks.DataKey(ctx, alice.String(), ms.KeyID); err != nil || ok {
					t.Errorf("forgotten %s: key %s still there (%v)", ms.ArchiveID, ms.KeyID, err)
				}
			}
			if checked != len(gone) {
				t.Errorf("checked %d records, want %d", checked, len(gone))
			}
		})
	}
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	tok := e.login(alice, "correct horse")
	for _, body := range []map[string]any{{}, {"all": true, "with": "bob@example.org"}, {"with": "@"}, {"start": minute(5), "end": minute(1)}, {"everything": true}} {
		if st, code := e.call("POST", "/api/v1/forget", tok, body, nil); st != 400 {
			t.Errorf("%v: %d %s, want 400", body, st, code)
		}
	}
}

func TestDeleteAccount(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	tok := e.login(alice, "correct horse")
	tok2 := e.login(alice, "correct horse")
	if st, code := e.call("DELETE", "/api/v1/account", tok, deleteRequest{Password: "wrong"}, nil); st != 403 || code != "auth_failed" {
		t.Fatalf("wrong password: %d %s", st, code)
	}
	if ok, _ := e.acc.Exists(ctx, alice); !ok {
		t.Fatal("account gone after a wrong password")
	}
	if st, code := e.call("DELETE", "/api/v1/account", tok, deleteRequest{Password: "correct horse"}, nil); st != 204 {
		t.Fatalf("delete: %d %s", st, code)
	}
	if ok, _ := e.acc.Exists(ctx, alice); ok {
		t.Error("account still exists")
	}
	if _, ok, err := e.ks.PublicKey(ctx, alice.String()); err != nil || ok {
		t.Errorf("keys not shredded: %v %v", ok, err)
	}
	for _, tk := range []string{tok, tok2} {
		if st, code := e.call("GET", "/api/v1/prefs", tk, nil, nil); st != 401 || code != "invalid_token" {
			t.Errorf("token after deletion: %d %s", st, code)
		}
	}
	if st, code := e.call("POST", "/api/v1/login", "", loginRequest{JID: alice.String(), Password: "correct horse"}, nil); st != 401 {
		t.Errorf("login after deletion: %d %s", st, code)
	}
}

// TestOpenAPI checks that every route of the handler is documented.
func TestOpenAPI(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	doc, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// paths maps "METHOD /path" of the document: a path is a two-space
	// indented key under paths:, a method a four-space one under it.
	documented := map[string]bool{}
	inPaths, path := false, ""
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && !strings.HasPrefix(line, " "):
			inPaths = false
		case inPaths && strings.HasPrefix(line, "  /"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && len(line) > 4 && strings.HasPrefix(line, "    ") && line[4] != ' ':
			documented[strings.ToUpper(strings.TrimSuffix(strings.TrimSpace(line), ":"))+" "+path] = true
		}
	}
	if len(e.srv.routes) == 0 {
		t.Fatal("no routes")
	}
	for _, r := range e.srv.routes {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.yaml", r)
		}
		delete(documented, r)
	}
	for r := range documented {
		t.Errorf("openapi.yaml documents %s, which the handler does not serve", r)
	}
}
