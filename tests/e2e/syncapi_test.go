package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"verlauf.im/verlauf/tests/testserver"
)

type api struct {
	t     *testing.T
	base  string
	c     *http.Client
	token string
}

func newAPI(t *testing.T, s *testserver.Server) *api {
	return &api{t: t, base: "https://" + s.API, c: &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: s.TLSConfig()},
	}}
}

func (a *api) do(method, path string, body any, out any) int {
	a.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			a.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

type syncPage struct {
	Messages []struct {
		Body    string `json:"body"`
		Partner string `json:"partner"`
	} `json:"messages"`
	Cursor string `json:"cursor"`
}

func bodies(p syncPage) string {
	var out []string
	for _, m := range p.Messages {
		out = append(out, m.Body)
	}
	return strings.Join(out, "|")
}

// A client reads over HTTPS what another device chats over XMPP, catches
// up exactly once across a restart, and a wrong password or another
// user's token gets nothing.
func TestSyncAPIWithXMPP(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	a := newAPI(t, s)
	var fail struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := a.do("POST", "/api/v1/login", map[string]string{"jid": alice, "password": "wrong"}, &fail); code != http.StatusUnauthorized || fail.Error.Code == "" {
		t.Fatalf("wrong password: %d %+v", code, fail)
	}
	var tok struct{ Token string }
	if code := a.do("POST", "/api/v1/login", map[string]string{"jid": alice, "password": password}, &tok); code != http.StatusOK || tok.Token == "" {
		t.Fatalf("login: %d", code)
	}
	a.token = tok.Token
	if code := a.do("PUT", "/api/v1/prefs", map[string]any{"default": "always", "always": []string{}, "never": []string{}}, nil); code != http.StatusOK {
		t.Fatalf("prefs: %d", code)
	}

	phone := login(t, s, alice, "", sasl.ScramSha256)
	b := login(t, s, bob, "", sasl.ScramSha256)
	phone.Send(t, "<presence/>")
	b.Send(t, "<presence/>")
	for i := range 3 {
		b.Send(t, fmt.Sprintf("<message to='%s' type='chat' id='s%d'><body>api line %d</body></message>", alice, i, i))
		phone.Expect(t, "message", isMessage(fmt.Sprintf("s%d", i)))
	}
	var page syncPage
	if code := a.do("GET", "/api/v1/sync?since=", nil, &page); code != http.StatusOK || bodies(page) != "api line 0|api line 1|api line 2" {
		t.Fatalf("first sync: %d %q", code, bodies(page))
	}
	cursor := page.Cursor
	var hist syncPage
	if code := a.do("GET", "/api/v1/history?with="+bob, nil, &hist); code != http.StatusOK || bodies(hist) != bodies(page) {
		t.Fatalf("history with bob: %d %q", code, bodies(hist))
	}

	// Another user's token reads nothing of alice's.
	other := newAPI(t, s)
	var bl struct{ Token string }
	other.do("POST", "/api/v1/login", map[string]string{"jid": bob, "password": password}, &bl)
	other.token = bl.Token
	var bobs syncPage
	other.do("GET", "/api/v1/sync?since=", nil, &bobs)
	if len(bobs.Messages) != 0 {
		t.Fatalf("bob (history off) read %q", bodies(bobs))
	}

	// One more, then a restart: the cursor yields exactly the new one.
	b.Send(t, "<message to='"+alice+"' type='chat' id='s3'><body>api line 3</body></message>")
	phone.Expect(t, "message", isMessage("s3"))
	s.Restart()
	a = newAPI(t, s)
	a.do("POST", "/api/v1/login", map[string]string{"jid": alice, "password": password}, &tok)
	a.token = tok.Token
	if code := a.do("GET", "/api/v1/sync?since="+cursor, nil, &page); code != http.StatusOK || bodies(page) != "api line 3" {
		t.Fatalf("sync after restart: %d %q", code, bodies(page))
	}
	if code := a.do("GET", "/api/v1/sync?since="+page.Cursor, nil, &page); code != http.StatusOK || len(page.Messages) != 0 {
		t.Fatalf("sync at the end: %d %q", code, bodies(page))
	}
}
