package syncapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
)

// The self-service web page: server-rendered HTML under /account/, one
// small script, no asset from elsewhere. See doc.go for its security.

//go:embed web
var webFiles embed.FS

const (
	// sessionCookie holds the API token of the browser's login. The
	// __Host- prefix makes the browser refuse it unless it is Secure,
	// has Path=/ and no Domain, so no sibling host can set or shadow it.
	sessionCookie = "__Host-verlauf-session"
	// loginCookie holds a random value that the login form's
	// synchronizer token is bound to: there is no session yet to bind
	// it to, and a login CSRF would log the browser into an account of
	// the attacker's choosing.
	loginCookie = "__Host-verlauf-login"
	// csp allows the page's own stylesheet and script and nothing else:
	// no inline script or style, no framing, forms only to this origin.
	csp = "default-src 'none'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	// csrfField is the form field of the synchronizer token.
	csrfField = "csrf"
	// recentMessages bounds how far back the conversation list looks;
	// conversationPage is the page of the conversation view.
	recentMessages   = 500
	conversationPage = 50
	// maxForm bounds a form body.
	maxForm = 16 << 10
	// webTime is how the page shows times: UTC, as the forms take them.
	webTime = "2006-01-02 15:04 UTC"
)

// web is the page's state: its templates and the key that derives the
// CSRF tokens.
type web struct {
	pages   map[string]*template.Template
	static  http.Handler
	csrfKey []byte
}

// registerWeb adds the web page's routes. They are not API routes (they
// answer HTML, not JSON) and are not in openapi.yaml.
func (s *Server) registerWeb() error {
	w := &web{pages: map[string]*template.Template{}, csrfKey: make([]byte, 32)}
	if _, err := rand.Read(w.csrfKey); err != nil {
		return err
	}
	for _, name := range []string{"login", "home", "conversation", "message"} {
		t, err := template.New("layout.html").Funcs(template.FuncMap{
			"time": func(t time.Time) string { return t.UTC().Format(webTime) },
		}).ParseFS(webFiles, "web/layout.html", "web/"+name+".html")
		if err != nil {
			return err
		}
		w.pages[name] = t
	}
	static, err := fs.Sub(webFiles, "web/static")
	if err != nil {
		return err
	}
	w.static = http.StripPrefix("/account/static/", http.FileServerFS(static))
	s.web = w
	s.mux.HandleFunc("GET /{$}", s.secured(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/account/", http.StatusSeeOther)
	}))
	s.mux.HandleFunc("GET /account/static/", s.secured(w.static.ServeHTTP))
	s.mux.HandleFunc("GET /account/{$}", s.secured(s.webHome))
	s.mux.HandleFunc("GET /account/conversation", s.secured(s.webSession(s.webConversation)))
	s.mux.HandleFunc("GET /account/export", s.secured(s.webSession(s.webExport)))
	s.mux.HandleFunc("POST /account/login", s.secured(s.webLogin))
	s.mux.HandleFunc("POST /account/logout", s.secured(s.webPost(s.webLogout)))
	s.mux.HandleFunc("POST /account/history", s.secured(s.webPost(s.webHistory)))
	s.mux.HandleFunc("POST /account/forget", s.secured(s.webPost(s.webForget)))
	s.mux.HandleFunc("POST /account/delete", s.secured(s.webPost(s.webDelete)))
	return nil
}

// secured sets the headers of every web answer (Handler adds no-store,
// nosniff and HSTS to all answers).
func (s *Server) secured(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		h(w, r)
	}
}

// session is a logged-in browser.
type session struct {
	user  jid.JID
	token string
	csrf  string
}

// csrfToken is a synchronizer token: an HMAC of the session's token (or
// of the login cookie's value, for the login form) under a key that
// exists only in this process, so it is bound to that session, dies with
// it, and needs no storage.
func (w *web) csrfToken(purpose, value string) string {
	m := hmac.New(sha256.New, w.csrfKey)
	m.Write([]byte("verlauf csrf\x00" + purpose + "\x00"))
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF compares in constant time.
func validCSRF(want, got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(want))
}

// loginCSRF returns the login form's token, setting the login cookie it is
// bound to if the browser has none.
func (s *Server) loginCSRF(w http.ResponseWriter, r *http.Request) (string, error) {
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) == 43 {
		return s.web.csrfToken("login", c.Value), nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	v := base64.RawURLEncoding.EncodeToString(raw[:])
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: v, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return s.web.csrfToken("login", v), nil
}

// currentSession reads the session cookie. err is errTokenExpired for a
// session that has just run out.
func (s *Server) currentSession(r *http.Request) (session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return session{}, errNoToken
	}
	user, err := s.tokens.lookup(c.Value)
	if err != nil {
		return session{}, err
	}
	return session{user: user, token: c.Value, csrf: s.web.csrfToken("session", c.Value)}, nil
}

// setSessionCookie sets the session cookie to live as long as the token
// (maxAge), or deletes it (value ""). Max-Age, not Expires: it does not
// depend on the browser's clock agreeing with the server's.
func setSessionCookie(w http.ResponseWriter, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: sessionCookie, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1}
	if value != "" {
		c.MaxAge = max(1, int(maxAge.Seconds()))
	}
	http.SetCookie(w, c)
}

// webSession runs h for a logged-in browser and sends others to the
// login form.
func (s *Server) webSession(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.currentSession(r)
		if err != nil {
			s.toLogin(w, r, err)
			return
		}
		h(w, r, sess)
	}
}

// toLogin sends the browser to the login form, saying why.
func (s *Server) toLogin(w http.ResponseWriter, r *http.Request, err error) {
	target := "/account/"
	if errors.Is(err, errTokenExpired) {
		setSessionCookie(w, "", 0)
		target += "?msg=expired"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// sameOrigin checks the browser's own statement of where a POST comes
// from, in addition to the synchronizer token. Current browsers send
// Sec-Fetch-Site on every request. Origin is "null" on our own forms
// (Referrer-Policy: no-referrer makes browsers hide it), so it decides
// only when it names an origin. A client that sends neither is not a
// browser that another page could drive; the token still guards it.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Scheme != "https" || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	return true
}

// readForm parses a bounded form body.
func readForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	return r.ParseForm() == nil
}

// webPost runs h for a state-changing POST of a logged-in browser: from
// this origin, with the session's synchronizer token.
func (s *Server) webPost(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			s.webFail(w, r, session{}, &failure{status: http.StatusForbidden, code: "cross_site", msg: "This form was sent from another site."})
			return
		}
		if !readForm(w, r) {
			s.webFail(w, r, session{}, &failure{status: http.StatusBadRequest, code: "bad_request", msg: "The form could not be read."})
			return
		}
		sess, err := s.currentSession(r)
		if err != nil {
			s.toLogin(w, r, err)
			return
		}
		if !validCSRF(sess.csrf, r.PostFormValue(csrfField)) {
			s.webFail(w, r, sess, &failure{status: http.StatusForbidden, code: "csrf", msg: "The form is stale or was not sent by this page. Reload the page and try again."})
			return
		}
		h(w, r, sess)
	}
}

// page is what the templates see.
type page struct {
	Title  string
	User   string
	CSRF   string
	Notice string
	Error  string
	// login
	JID string
	// home
	Mode          string
	HistoryOn     bool
	Conversations []conversation
	// conversation
	With     string
	Messages []webMessage
	Older    string
	// message: a page that only says something
	Deleted bool
}

type conversation struct {
	Partner string
	Last    webMessage
	Count   int
}

type webMessage struct {
	Time     time.Time
	Outgoing bool
	Partner  string
	Body     string
	// Unreadable is a record whose key is gone or whose bytes changed.
	Unreadable bool
}

func toWebMessage(m archive.Message) webMessage {
	if m.Err != nil {
		return webMessage{Time: domain.ArchiveIDTime(m.ID), Unreadable: true}
	}
	return webMessage{Time: m.At, Outgoing: m.Direction == domain.DirectionOut, Partner: m.Partner, Body: bodyOf(m.Stanza)}
}

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.web.pages[name].Execute(w, p); err != nil {
		s.log.WithError(err).WithField("page", name).Warn("syncapi: rendering the web page")
	}
}

// webFail shows a failure as a page: the login form for a session that
// is gone, else a page with the message.
func (s *Server) webFail(w http.ResponseWriter, r *http.Request, sess session, f *failure) {
	if f.code == "session_locked" {
		s.toLogin(w, r, errTokenExpired)
		return
	}
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter.Seconds())))
	}
	p := page{Title: "Error", Error: f.msg}
	if sess.token != "" {
		p.User, p.CSRF = sess.user.String(), sess.csrf
	}
	s.render(w, f.status, "message", p)
}

// notice is the message a redirect after a POST asks the page to show
// (?msg=…); nothing from the query string is shown but a number.
func notice(q url.Values) string {
	switch q.Get("msg") {
	case "history_on":
		return "History is on: new messages are kept, sealed under your password."
	case "history_off":
		return "History is off: new messages are not kept."
	case "forgotten":
		if n, err := strconv.Atoi(q.Get("n")); err == nil && n >= 0 {
			return "Forgotten: " + strconv.Itoa(n) + " messages."
		}
	case "expired":
		return "Your session has expired. Please log in again."
	case "logged_out":
		return "You are logged out."
	}
	return ""
}

// webHome is the login form or, logged in, the account's page.
func (s *Server) webHome(w http.ResponseWriter, r *http.Request) {
	sess, err := s.currentSession(r)
	if err != nil {
		if errors.Is(err, errTokenExpired) {
			setSessionCookie(w, "", 0)
		}
		s.renderLogin(w, r, http.StatusOK, page{Notice: notice(r.URL.Query())})
		return
	}
	ctx := r.Context()
	prefs, err := s.cfg.Archive.Prefs(ctx, sess.user)
	if err != nil {
		s.webFail(w, r, sess, s.classify(r, err))
		return
	}
	convs, err := s.recentConversations(r, sess.user)
	if err != nil {
		s.webFail(w, r, sess, s.classify(r, err))
		return
	}
	s.render(w, http.StatusOK, "home", page{
		Title: "Your account", User: sess.user.String(), CSRF: sess.csrf, Notice: notice(r.URL.Query()),
		Mode: string(prefs.Default), HistoryOn: prefs.Default != domain.ArchiveNever, Conversations: convs,
	})
}

// recentConversations groups the last recentMessages messages by partner,
// the most recent conversation first.
func (s *Server) recentConversations(r *http.Request, user jid.JID) ([]conversation, error) {
	var out []conversation
	index := map[string]int{}
	q := archive.Query{Last: true, Max: 100, FlipPage: true}
	for seen := 0; seen < recentMessages; {
		page, err := s.cfg.Archive.Query(r.Context(), user, q)
		if err != nil {
			return nil, err
		}
		// FlipPage: newest first.
		for _, m := range page.Messages {
			if m.Err != nil {
				continue
			}
			i, ok := index[m.Partner]
			if !ok {
				i = len(out)
				index[m.Partner] = i
				out = append(out, conversation{Partner: m.Partner, Last: toWebMessage(m)})
			}
			out[i].Count++
		}
		seen += len(page.Messages)
		if page.Complete || len(page.Messages) == 0 {
			break
		}
		q.BeforeID = page.First
	}
	return out, nil
}

func (s *Server) webConversation(w http.ResponseWriter, r *http.Request, sess session) {
	v := r.URL.Query()
	with, err := domain.ParseBareJID(v.Get("with"))
	if err != nil {
		s.webFail(w, r, sess, &failure{status: http.StatusBadRequest, code: "invalid_parameter", msg: "That is not a JID."})
		return
	}
	q := archive.Query{With: with, Last: true, Max: conversationPage}
	if b := v.Get("before"); b != "" {
		if q.BeforeID, err = uuid.Parse(b); err != nil {
			s.webFail(w, r, sess, &failure{status: http.StatusBadRequest, code: "invalid_parameter", msg: "That is not a message id."})
			return
		}
	}
	pg, err := s.cfg.Archive.Query(r.Context(), sess.user, q)
	if err != nil {
		s.webFail(w, r, sess, s.classify(r, err))
		return
	}
	p := page{Title: "Conversation with " + with.String(), User: sess.user.String(), CSRF: sess.csrf, With: with.String()}
	for _, m := range pg.Messages {
		p.Messages = append(p.Messages, toWebMessage(m))
	}
	if !pg.Complete && pg.First != uuid.Nil {
		p.Older = "/account/conversation?" + url.Values{"with": {with.String()}, "before": {pg.First.String()}}.Encode()
	}
	s.render(w, http.StatusOK, "conversation", p)
}

func (s *Server) webExport(w http.ResponseWriter, r *http.Request, sess session) {
	format, ok := exportFormat(r.URL.Query().Get("format"))
	if !ok {
		s.webFail(w, r, sess, &failure{status: http.StatusBadRequest, code: "invalid_parameter", msg: "Unknown export format."})
		return
	}
	if f := s.streamExport(w, r, sess.user, format); f != nil {
		s.webFail(w, r, sess, f)
	}
}

// renderLogin shows the login form with its synchronizer token.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, p page) {
	tok, err := s.loginCSRF(w, r)
	if err != nil {
		s.webFail(w, r, session{}, s.classify(r, err))
		return
	}
	p.Title, p.CSRF = "Log in", tok
	s.render(w, status, "login", p)
}

// webLogin logs in through the API's own login (throttle included) and
// keeps the token in the session cookie. The form's synchronizer token is
// bound to the login cookie, so that another site cannot log the browser
// into an account of its choosing.
func (s *Server) webLogin(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		s.webFail(w, r, session{}, &failure{status: http.StatusForbidden, code: "cross_site", msg: "This form was sent from another site."})
		return
	}
	if !readForm(w, r) {
		s.webFail(w, r, session{}, &failure{status: http.StatusBadRequest, code: "bad_request", msg: "The form could not be read."})
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !validCSRF(s.web.csrfToken("login", c.Value), r.PostFormValue(csrfField)) {
		s.renderLogin(w, r, http.StatusForbidden, page{Error: "The form is stale or was not sent by this page. Please try again."})
		return
	}
	jidStr := strings.TrimSpace(r.PostFormValue("jid"))
	resp, f := s.authenticate(r, jidStr, r.PostFormValue("password"))
	if f != nil {
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter.Seconds())))
		}
		msg := "Wrong JID or password."
		if f.code != "auth_failed" {
			msg = f.msg
		}
		s.renderLogin(w, r, f.status, page{JID: jidStr, Error: msg})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	// A cookie left by an earlier login is replaced: end its token.
	if old, err := r.Cookie(sessionCookie); err == nil && old.Value != "" {
		s.tokens.revoke(old.Value)
	}
	setSessionCookie(w, resp.Token, resp.Expires.Sub(s.cfg.Clock.Now()))
	http.Redirect(w, r, "/account/", http.StatusSeeOther)
}

func (s *Server) webLogout(w http.ResponseWriter, r *http.Request, sess session) {
	s.tokens.revoke(sess.token)
	setSessionCookie(w, "", 0)
	http.Redirect(w, r, "/account/?msg=logged_out", http.StatusSeeOther)
}

// webHistory turns history on (XEP-0313 default "always") or off
// ("never"), keeping the always/never lists.
func (s *Server) webHistory(w http.ResponseWriter, r *http.Request, sess session) {
	var mode domain.ArchiveMode
	switch r.PostFormValue("history") {
	case "on":
		mode = domain.ArchiveAlways
	case "off":
		mode = domain.ArchiveNever
	default:
		s.webFail(w, r, sess, &failure{status: http.StatusBadRequest, code: "invalid_argument", msg: "Choose on or off."})
		return
	}
	ctx := r.Context()
	cur, err := s.cfg.Archive.Prefs(ctx, sess.user)
	if err != nil {
		s.webFail(w, r, sess, s.classify(r, err))
		return
	}
	always, err1 := parseJIDs(cur.Always)
	never, err2 := parseJIDs(cur.Never)
	if err := errors.Join(err1, err2); err != nil {
		s.webFail(w, r, sess, s.classify(r, err))
		return
	}
	if _, err := s.cfg.Archive.SetPrefs(ctx, sess.user, mode, always, never); err != nil {
		s.webFail(w, r, sess, s.classify(r, err))
		return
	}
	msg := "history_off"
	if mode == domain.ArchiveAlways {
		msg = "history_on"
	}
	http.Redirect(w, r, "/account/?msg="+msg, http.StatusSeeOther)
}

func parseJIDs(ss []string) ([]jid.JID, error) {
	out := make([]jid.JID, 0, len(ss))
	for _, s := range ss {
		j, err := jid.Parse(s)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// formTime reads a datetime-local field as UTC. A value without seconds
// means the whole minute: as an end bound it reaches to the minute's last
// millisecond.
func formTime(v string, end bool) (time.Time, error) {
	if t, err := time.Parse("2006-01-02T15:04:05", v); err == nil {
		if end {
			t = t.Add(time.Second - time.Millisecond)
		}
		return t, nil
	}
	t, err := time.Parse("2006-01-02T15:04", v)
	if err != nil {
		return time.Time{}, err
	}
	if end {
		t = t.Add(time.Minute - time.Millisecond)
	}
	return t, nil
}

// webForget forgets all history, a partner's or a time range's (the
// archive's crypto-shredding, as POST /api/v1/forget).
func (s *Server) webForget(w http.ResponseWriter, r *http.Request, sess session) {
	bad := func(msg string) {
		s.webFail(w, r, sess, &failure{status: http.StatusBadRequest, code: "invalid_argument", msg: msg})
	}
	var sel archive.ForgetSelection
	switch r.PostFormValue("scope") {
	case "all":
		sel.All = true
	case "partner":
		j, err := domain.ParseBareJID(strings.TrimSpace(r.PostFormValue("with")))
		if err != nil {
			bad("Give the JID of the conversation to forget.")
			return
		}
		sel.With = j
	case "range":
		var err error
		if v := r.PostFormValue("start"); v != "" {
			if sel.Start, err = formTime(v, false); err != nil {
				bad("The start is not a date and time.")
				return
			}
		}
		if v := r.PostFormValue("end"); v != "" {
			if sel.End, err = formTime(v, true); err != nil {
				bad("The end is not a date and time.")
				return
			}
		}
		if sel.Start.IsZero() && sel.End.IsZero() {
			bad("Give a start or an end (or both).")
			return
		}
	default:
		bad("Choose what to forget.")
		return
	}
	res, err := s.cfg.Archive.Forget(r.Context(), sess.user, sel)
	if err != nil {
		s.webFail(w, r, sess, s.classify(r, err))
		return
	}
	http.Redirect(w, r, "/account/?msg=forgotten&n="+strconv.Itoa(res.Count), http.StatusSeeOther)
}

// webDelete deletes the account once the user has typed their JID again
// and their password: the cookie alone is not enough, as the API's token
// alone is not.
func (s *Server) webDelete(w http.ResponseWriter, r *http.Request, sess session) {
	typed, err := domain.ParseBareJID(strings.TrimSpace(r.PostFormValue("confirm_jid")))
	if err != nil || !typed.Equal(sess.user) {
		s.webFail(w, r, sess, &failure{status: http.StatusBadRequest, code: "invalid_argument", msg: "Type your JID exactly to confirm the deletion. Nothing was deleted."})
		return
	}
	if f := s.deleteWithPassword(r, sess.user, r.PostFormValue("password")); f != nil {
		if f.code == "auth_failed" {
			f.msg = "Wrong password. Nothing was deleted."
		}
		s.webFail(w, r, sess, f)
		return
	}
	setSessionCookie(w, "", 0)
	s.render(w, http.StatusOK, "message", page{Title: "Account deleted", Deleted: true, JID: sess.user.String()})
}
