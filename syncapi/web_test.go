package syncapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/userdata"
)

// browser is a minimal browser for the handler: it keeps the session
// cookie and sends what a browser sends with a same-origin form.
type browser struct {
	e       *env
	cookies map[string]*http.Cookie
	// cookie is the session cookie (nil when logged out).
	cookie *http.Cookie
}

const testHost = "verlauf.example"

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	b.e.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(method, "https://"+testHost+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://"+testHost)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	if b.cookies == nil {
		b.cookies = map[string]*http.Cookie{}
	}
	if b.cookie != nil {
		b.cookies[sessionCookie] = b.cookie
	} else {
		delete(b.cookies, sessionCookie)
	}
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	b.e.srv.Handler().ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	b.cookie = b.cookies[sessionCookie]
	return rec
}

// login fills in the login form, as a browser does after loading it.
func (b *browser) login(user, password string) *httptest.ResponseRecorder {
	b.e.t.Helper()
	return b.do("POST", "/account/login", url.Values{"jid": {user}, "password": {password}, "csrf": {b.loginCSRF()}}, nil)
}

// loginCSRF loads the login form and returns its token.
func (b *browser) loginCSRF() string {
	b.e.t.Helper()
	saved := b.cookie
	b.cookie = nil
	tok := b.token(b.do("GET", "/account/", nil, nil))
	b.cookie = saved
	return tok
}

func (b *browser) token(rec *httptest.ResponseRecorder) string {
	b.e.t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		b.e.t.Fatalf("no CSRF token on the page: %s", rec.Body.String())
	}
	return m[1]
}

// csrf reads the synchronizer token from the account page.
func (b *browser) csrf() string {
	b.e.t.Helper()
	return b.token(b.do("GET", "/account/", nil, nil))
}

func newBrowser(t *testing.T, e *env, user, password string) *browser {
	t.Helper()
	b := &browser{e: e}
	if rec := b.login(user, password); rec.Code != http.StatusSeeOther || b.cookie == nil {
		t.Fatalf("login: %d %s", rec.Code, rec.Body.String())
	}
	return b
}

func TestWebLogin(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	b := &browser{e: e}

	rec := b.login("alice@example.org", "wrong")
	if rec.Code != http.StatusUnauthorized || b.cookie != nil || !strings.Contains(rec.Body.String(), "Wrong JID or password.") {
		t.Fatalf("wrong password: %d, cookie %v, %s", rec.Code, b.cookie, rec.Body.String())
	}
	if e.arch.Keys().Unlocked(alice) {
		t.Fatal("keys unlocked by a failed login")
	}

	rec = b.login("alice@example.org", "correct horse")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/account/" {
		t.Fatalf("login: %d %v", rec.Code, rec.Header())
	}
	c := b.cookie
	if c == nil {
		t.Fatal("no session cookie")
	}
	if c.Name != "__Host-verlauf-session" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie %+v: want __Host-, Secure, HttpOnly, SameSite=Strict, Path=/, no Domain", c)
	}
	if c.MaxAge != int(DefaultTokenTTL.Seconds()) || !c.Expires.IsZero() {
		t.Errorf("cookie Max-Age %d, Expires %v: want the token's life, %v, and no Expires", c.MaxAge, c.Expires, DefaultTokenTTL)
	}
	if !e.arch.Keys().Unlocked(alice) {
		t.Error("keys not unlocked by the web login")
	}
	if page := b.do("GET", "/account/", nil, nil).Body.String(); !strings.Contains(page, `id="user">alice@example.org<`) {
		t.Errorf("account page does not show the user: %s", page)
	}

	// Logging in again ends the session the cookie held.
	first := c.Value
	b.login("alice@example.org", "correct horse")
	if _, err := e.srv.tokens.lookup(first); err == nil {
		t.Error("the replaced session's token still works")
	}

	rec = b.do("POST", "/account/logout", url.Values{"csrf": {b.csrf()}}, nil)
	if rec.Code != http.StatusSeeOther || b.cookie != nil {
		t.Fatalf("logout: %d, cookie %v", rec.Code, b.cookie)
	}
	if e.arch.Keys().Unlocked(alice) {
		t.Error("keys still unlocked after logout")
	}
	if page := b.do("GET", "/account/?msg=logged_out", nil, nil).Body.String(); !strings.Contains(page, `id="login"`) || !strings.Contains(page, "You are logged out.") {
		t.Errorf("after logout: %s", page)
	}
}

// TestWebLoginThrottle: the web form and the API share one throttle.
func TestWebLoginThrottle(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{LoginFailures: 3, LoginPenalty: time.Minute})
	e.register("alice@example.org", "correct horse")
	b := &browser{e: e}
	for range 2 {
		if rec := b.login("alice@example.org", "guess"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("guess: %d", rec.Code)
		}
	}
	e.call("POST", "/api/v1/login", "", loginRequest{JID: "alice@example.org", Password: "guess"}, nil)
	rec := b.login("alice@example.org", "correct horse")
	if rec.Code != http.StatusTooManyRequests || b.cookie != nil || rec.Header().Get("Retry-After") != "60" {
		t.Fatalf("after 3 failures (web and API): %d, cookie %v, Retry-After %q", rec.Code, b.cookie, rec.Header().Get("Retry-After"))
	}
	if st, code := e.call("POST", "/api/v1/login", "", loginRequest{JID: "alice@example.org", Password: "correct horse"}, nil); st != 429 {
		t.Errorf("API after web failures: %d %s", st, code)
	}
}

func TestWebHeaders(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	e.register("alice@example.org", "correct horse")
	anon := &browser{e: e}
	b := newBrowser(t, e, "alice@example.org", "correct horse")
	tests := []struct {
		name     string
		b        *browser
		path     string
		status   int
		mimeType string
	}{
		{"login form", anon, "/account/", 200, "text/html; charset=utf-8"},
		{"account page", b, "/account/", 200, "text/html; charset=utf-8"},
		{"conversation", b, "/account/conversation?with=bob@example.org", 200, "text/html; charset=utf-8"},
		{"stylesheet", anon, "/account/static/style.css", 200, "text/css; charset=utf-8"},
		{"script", anon, "/account/static/app.js", 200, "text/javascript; charset=utf-8"},
		{"root", anon, "/", http.StatusSeeOther, ""},
	}
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Frame-Options":         "DENY",
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.b.do("GET", tc.path, nil, nil)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			for k, v := range want {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if tc.mimeType != "" && rec.Header().Get("Content-Type") != tc.mimeType {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tc.mimeType)
			}
			// Nothing inline that the CSP would block, nothing from
			// elsewhere.
			if strings.Contains(tc.mimeType, "html") {
				if bad := regexp.MustCompile(`<script>|<style|\sstyle=|\son[a-z]+=|https?:`).FindString(rec.Body.String()); bad != "" {
					t.Errorf("page holds %q", bad)
				}
			}
		})
	}
}

// TestWebEscaping: a message body is text, never markup.
func TestWebEscaping(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	b := newBrowser(t, e, "alice@example.org", "correct horse")
	e.archiveMsg(alice, "bob@example.org", domain.DirectionIn, `&lt;script&gt;alert("x")&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;`, minute(1))
	for _, path := range []string{"/account/", "/account/conversation?with=bob@example.org"} {
		body := b.do("GET", path, nil, nil).Body.String()
		if !strings.Contains(body, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;`) {
			t.Errorf("%s: the body is not shown escaped: %s", path, body)
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img") {
			t.Errorf("%s: the body is markup: %s", path, body)
		}
	}
}

// state is what the state-changing forms could change.
type state struct {
	mode     domain.ArchiveMode
	messages int
	exists   bool
	session  bool
}

func (e *env) state(user jid.JID, b *browser) state {
	e.t.Helper()
	ctx := context.Background()
	var s state
	p, err := e.arch.Prefs(ctx, user)
	if err != nil {
		e.t.Fatal(err)
	}
	s.mode = p.Default
	if s.exists, err = e.acc.Exists(ctx, user); err != nil {
		e.t.Fatal(err)
	}
	if s.exists && e.arch.Keys().Unlocked(user) {
		pg, err := e.arch.Query(ctx, user, archive.Query{Max: 100})
		if err != nil {
			e.t.Fatal(err)
		}
		s.messages = len(pg.Messages)
	}
	if b.cookie != nil {
		_, err := e.srv.tokens.lookup(b.cookie.Value)
		s.session = err == nil
	}
	return s
}

func TestWebCSRF(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	e.register("mallory@example.org", "mallory pw")
	b := newBrowser(t, e, "alice@example.org", "correct horse")
	e.call("PUT", "/api/v1/prefs", e.login(alice, "correct horse"), prefsBody{Default: "always"}, nil)
	e.chat(alice, 4)
	good := b.csrf()
	other := newBrowser(t, e, "mallory@example.org", "mallory pw").csrf()

	forms := []struct {
		path string
		form url.Values
	}{
		{"/account/history", url.Values{"history": {"off"}}},
		{"/account/forget", url.Values{"scope": {"all"}}},
		{"/account/delete", url.Values{"confirm_jid": {"alice@example.org"}, "password": {"correct horse"}}},
		{"/account/logout", url.Values{}},
	}
	attacks := []struct {
		name string
		csrf string
		hdr  map[string]string
	}{
		{"no token", "", nil},
		{"wrong token", strings.Repeat("A", 43), nil},
		{"another session's token", other, nil},
		{"token with a byte changed", good[:len(good)-1] + string(good[len(good)-1]^1), nil},
		{"cross-site origin", good, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": ""}},
		{"cross-site fetch", good, map[string]string{"Origin": "", "Sec-Fetch-Site": "cross-site"}},
		{"same-site fetch", good, map[string]string{"Origin": "", "Sec-Fetch-Site": "same-site"}},
		{"plain http origin", good, map[string]string{"Origin": "http://" + testHost}},
	}
	before := e.state(alice, b)
	if before != (state{mode: domain.ArchiveAlways, messages: 4, exists: true, session: true}) {
		t.Fatalf("state before: %+v", before)
	}
	for _, f := range forms {
		for _, a := range attacks {
			t.Run(f.path+"/"+a.name, func(t *testing.T) {
				form := url.Values{}
				for k, v := range f.form {
					form[k] = v
				}
				if a.csrf != "" {
					form.Set("csrf", a.csrf)
				}
				rec := b.do("POST", f.path, form, a.hdr)
				if rec.Code != http.StatusForbidden {
					t.Errorf("status %d, want 403", rec.Code)
				}
				if got := e.state(alice, b); got != before {
					t.Errorf("state changed: %+v, was %+v", got, before)
				}
			})
		}
	}
	// The login form's token is bound to the login cookie: another site
	// cannot log the browser into mallory's account.
	anon := &browser{e: e}
	own := anon.loginCSRF()
	mallorys := (&browser{e: e}).loginCSRF()
	for _, tc := range []struct {
		name string
		csrf string
		hdr  map[string]string
	}{
		{"no token", "", nil},
		{"another browser's token", mallorys, nil},
		{"cross-site origin", own, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": ""}},
		{"cross-site fetch", own, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		form := url.Values{"jid": {"mallory@example.org"}, "password": {"mallory pw"}}
		if tc.csrf != "" {
			form.Set("csrf", tc.csrf)
		}
		if rec := anon.do("POST", "/account/login", form, tc.hdr); rec.Code != http.StatusForbidden || anon.cookie != nil {
			t.Errorf("login, %s: %d, cookie %v", tc.name, rec.Code, anon.cookie)
		}
	}
	// Origin "null" is what browsers send under Referrer-Policy:
	// no-referrer; the token decides.
	if rec := anon.do("POST", "/account/login", url.Values{"jid": {"mallory@example.org"}, "password": {"mallory pw"}, "csrf": {own}}, map[string]string{"Origin": "null"}); rec.Code != http.StatusSeeOther || anon.cookie == nil {
		t.Errorf("login with its own token: %d", rec.Code)
	}

	// With the right token the same form works (the attacks failed for
	// their fault, not the form's).
	if rec := b.do("POST", "/account/history", url.Values{"history": {"off"}, "csrf": {good}}, nil); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/account/?msg=history_off" {
		t.Fatalf("history off: %d %v", rec.Code, rec.Header())
	}
	if got := e.state(alice, b).mode; got != domain.ArchiveNever {
		t.Errorf("mode %s after turning history off", got)
	}
	// A client that sends no Origin and no Sec-Fetch-Site (not a browser)
	// passes on the token alone.
	if rec := b.do("POST", "/account/history", url.Values{"history": {"on"}, "csrf": {good}}, map[string]string{"Origin": "", "Sec-Fetch-Site": ""}); rec.Code != http.StatusSeeOther {
		t.Fatalf("history on: %d", rec.Code)
	}
	if got := e.state(alice, b).mode; got != domain.ArchiveAlways {
		t.Errorf("mode %s after turning history on", got)
	}
}

func TestWebForget(t *testing.T) {
	tests := []struct {
		name   string
		form   url.Values
		status int
		kept   []int // indexes of e.chat(alice, 10) still there
	}{
		{"all", url.Values{"scope": {"all"}}, 303, nil},
		{"partner", url.Values{"scope": {"partner"}, "with": {"carol@example.org"}}, 303, []int{0, 2, 4, 6, 8}},
		// minute(3) to the end of minute(6), inclusive.
		{"range", url.Values{"scope": {"range"}, "start": {"2025-05-01T10:03"}, "end": {"2025-05-01T10:06"}}, 303, []int{0, 1, 2, 7, 8, 9}},
		{"from", url.Values{"scope": {"range"}, "start": {"2025-05-01T10:08:00"}}, 303, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"no scope", url.Values{}, 400, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"partner not a JID", url.Values{"scope": {"partner"}, "with": {"@"}}, 400, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"empty range", url.Values{"scope": {"range"}}, 400, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"bad time", url.Values{"scope": {"range"}, "start": {"yesterday"}}, 400, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, t.TempDir(), Config{})
			alice := e.register("alice@example.org", "correct horse")
			b := newBrowser(t, e, "alice@example.org", "correct horse")
			all := e.chat(alice, 10)
			form := url.Values{"csrf": {b.csrf()}}
			for k, v := range tc.form {
				form[k] = v
			}
			rec := b.do("POST", "/account/forget", form, nil)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body.String())
			}
			if tc.status == 303 {
				want := "/account/?msg=forgotten&n=" + strconv.Itoa(len(all)-len(tc.kept))
				if loc := rec.Header().Get("Location"); loc != want {
					t.Errorf("Location %q, want %q", loc, want)
				}
			}
			pg, err := e.arch.Query(context.Background(), alice, archive.Query{Max: 100})
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, m := range pg.Messages {
				got = append(got, m.ID.String())
			}
			for _, i := range tc.kept {
				want = append(want, all[i])
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("kept %v, want %v", got, want)
			}
			// The page shows what is left.
			page := b.do("GET", "/account/", nil, nil).Body.String()
			if (len(tc.kept) == 0) != strings.Contains(page, `id="no-conversations"`) {
				t.Errorf("page after forgetting %d of 10: %s", 10-len(tc.kept), page)
			}
		})
	}
}

func TestWebDelete(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	b := newBrowser(t, e, "alice@example.org", "correct horse")
	e.chat(alice, 2)
	csrf := b.csrf()
	before := e.state(alice, b)
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
	}{
		{"JID not retyped", url.Values{"password": {"correct horse"}}, 400},
		{"another JID", url.Values{"confirm_jid": {"bob@example.org"}, "password": {"correct horse"}}, 400},
		{"wrong password", url.Values{"confirm_jid": {"alice@example.org"}, "password": {"wrong"}}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("csrf", csrf)
			rec := b.do("POST", "/account/delete", tc.form, nil)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), "Nothing was deleted.") {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.status, rec.Body.String())
			}
			if got := e.state(alice, b); got != before {
				t.Errorf("state changed: %+v, was %+v", got, before)
			}
		})
	}
	rec := b.do("POST", "/account/delete", url.Values{"csrf": {csrf}, "confirm_jid": {"Alice@Example.org"}, "password": {"correct horse"}}, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `id="deleted"`) {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body.String())
	}
	if b.cookie != nil {
		t.Error("session cookie not cleared")
	}
	if ok, _ := e.acc.Exists(context.Background(), alice); ok {
		t.Error("account still exists")
	}
	if _, ok, err := e.ks.PublicKey(context.Background(), alice.String()); err != nil || ok {
		t.Errorf("keys not shredded: %v %v", ok, err)
	}
}

func TestWebExport(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	b := newBrowser(t, e, "alice@example.org", "correct horse")
	e.chat(alice, 7)
	for _, format := range []string{"xep0227", "jsonl"} {
		rec := b.do("GET", "/account/export?format="+format, nil, nil)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment; ") {
			t.Fatalf("%s: %d %v", format, rec.Code, rec.Header())
		}
		m, err := userdata.Verify(bytes.NewReader(rec.Body.Bytes()))
		if err != nil || m.Counts[userdata.KindMessage] != 7 || string(m.Format) != format {
			t.Errorf("%s: manifest %+v, %v", format, m, err)
		}
	}
	if rec := b.do("GET", "/account/export?format=pdf", nil, nil); rec.Code != 400 {
		t.Errorf("bad format: %d", rec.Code)
	}
	anon := &browser{e: e}
	if rec := anon.do("GET", "/account/export?format=jsonl", nil, nil); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/account/" {
		t.Errorf("without a session: %d %v", rec.Code, rec.Header())
	}
}

// TestWebExpired: an expired session is sent to the login form and
// changes nothing.
func TestWebExpired(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	b := newBrowser(t, e, "alice@example.org", "correct horse")
	csrf := b.csrf()
	e.clock.add(DefaultTokenTTL)
	cookie := b.cookie
	rec := b.do("POST", "/account/forget", url.Values{"csrf": {csrf}, "scope": {"all"}}, nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/account/?msg=expired" || b.cookie != nil {
		t.Fatalf("expired POST: %d %v", rec.Code, rec.Header())
	}
	b.cookie = cookie
	page := b.do("GET", "/account/conversation?with=bob@example.org", nil, nil)
	if page.Code != http.StatusSeeOther {
		t.Errorf("expired GET: %d", page.Code)
	}
	if e.arch.Keys().Unlocked(alice) {
		t.Error("keys unlocked after the session expired")
	}
}
