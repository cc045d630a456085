package syncapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
)

// tokens are the live tokens, keyed by the SHA-256 of the token so the
// map holds nothing a memory dump could replay. An expired token stays as
// a tombstone for one more TTL, so that its use is answered token_expired
// rather than invalid_token.
type tokens struct {
	clock   domain.Clock
	ttl     time.Duration
	release func(jid.JID)

	mu sync.Mutex
	m  map[[32]byte]*token
}

type token struct {
	user    jid.JID
	expires time.Time
	held    bool // holds a session of the user's keys
	timer   *time.Timer
}

func newTokens(clock domain.Clock, ttl time.Duration, release func(jid.JID)) *tokens {
	return &tokens{clock: clock, ttl: ttl, release: release, m: map[[32]byte]*token{}}
}

// issue returns a new token for user, who holds one unlocked session.
func (t *tokens) issue(user jid.JID) (string, time.Time, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, err
	}
	s := base64.RawURLEncoding.EncodeToString(raw[:])
	key := sha256.Sum256([]byte(s))
	now := t.clock.Now()
	tok := &token{user: user, expires: now.Add(t.ttl), held: true}
	t.mu.Lock()
	t.sweep(now)
	t.m[key] = tok
	// The timer lets go of the keys of a token nobody uses any more; a
	// use after expiry (by the clock) does the same, whichever comes
	// first.
	tok.timer = time.AfterFunc(t.ttl, func() { t.expire(key) })
	t.mu.Unlock()
	return s, tok.expires, nil
}

var (
	errNoToken      = errors.New("no token")
	errTokenExpired = errors.New("token expired")
)

// lookup returns the user of a token.
func (t *tokens) lookup(s string) (jid.JID, error) {
	key := sha256.Sum256([]byte(s))
	t.mu.Lock()
	tok := t.m[key]
	t.mu.Unlock()
	if tok == nil {
		return jid.JID{}, errNoToken
	}
	if !t.clock.Now().Before(tok.expires) {
		t.expire(key)
		return jid.JID{}, errTokenExpired
	}
	return tok.user, nil
}

// expire releases the keys of a token and keeps it as a tombstone.
func (t *tokens) expire(key [32]byte) {
	t.mu.Lock()
	tok := t.m[key]
	if tok == nil || !tok.held {
		t.mu.Unlock()
		return
	}
	tok.held = false
	tok.timer.Stop()
	if t.clock.Now().Before(tok.expires) {
		tok.expires = t.clock.Now()
	}
	t.mu.Unlock()
	t.release(tok.user)
}

// revoke ends a token for good (logout).
func (t *tokens) revoke(s string) {
	key := sha256.Sum256([]byte(s))
	t.expire(key)
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
}

// revokeUser ends every token of user (account deletion).
func (t *tokens) revokeUser(user jid.JID) {
	t.mu.Lock()
	var keys [][32]byte
	for k, tok := range t.m {
		if tok.user.Equal(user) {
			keys = append(keys, k)
		}
	}
	t.mu.Unlock()
	for _, k := range keys {
		t.expire(k)
		t.mu.Lock()
		delete(t.m, k)
		t.mu.Unlock()
	}
}

func (t *tokens) closeAll() {
	t.mu.Lock()
	keys := make([][32]byte, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	t.mu.Unlock()
	for _, k := range keys {
		t.expire(k)
	}
	t.mu.Lock()
	clear(t.m)
	t.mu.Unlock()
}

// sweep drops tombstones older than a TTL. The caller holds t.mu.
func (t *tokens) sweep(now time.Time) {
	for k, tok := range t.m {
		if !tok.held && now.Sub(tok.expires) > t.ttl {
			delete(t.m, k)
		}
	}
}

type ctxKey int

const (
	userKey ctxKey = iota
	tokenKey
)

func userOf(r *http.Request) jid.JID { return r.Context().Value(userKey).(jid.JID) }

// authed checks the bearer token and puts its user in the context.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="verlauf"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "an Authorization: Bearer token is required")
			return
		}
		user, err := s.tokens.lookup(tok)
		switch {
		case errors.Is(err, errTokenExpired):
			w.Header().Set("WWW-Authenticate", `Bearer realm="verlauf", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "token_expired", "the token has expired; log in again")
			return
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="verlauf", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid_token", "unknown token")
			return
		}
		ctx := context.WithValue(context.WithValue(r.Context(), userKey, user), tokenKey, tok)
		h(w, r.WithContext(ctx))
	}
}

type loginRequest struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	JID     string    `json:"jid"`
}

// clientAddr is the client's IP. X-Forwarded-For is not believed: the
// API is served directly over TLS.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if !readJSON(w, r, &req) {
		return
	}
	resp, f := s.authenticate(r, req.JID, req.Password)
	if f != nil {
		writeFailure(w, f)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// authenticate is the one login path of the API and the web page: the
// throttle, the password check, the unlocking of the keys and the token.
func (s *Server) authenticate(r *http.Request, jidStr, password string) (loginResponse, *failure) {
	addr := "addr:" + clientAddr(r)
	user, jerr := domain.ParseBareJID(jidStr)
	acct := "user:" + strings.ToLower(jidStr)
	if jerr == nil {
		acct = "user:" + user.String()
	}
	if s.byUser.Blocked(acct) || s.byAddr.Blocked(addr) {
		return loginResponse{}, &failure{status: http.StatusTooManyRequests, code: "too_many_attempts", msg: "too many failed logins; try again later", retryAfter: s.cfg.LoginPenalty}
	}
	fail := func() *failure {
		s.byUser.Fail(acct)
		s.byAddr.Fail(addr)
		return &failure{status: http.StatusUnauthorized, code: "auth_failed", msg: "wrong JID or password"}
	}
	if jerr != nil {
		return loginResponse{}, fail()
	}
	err := s.cfg.Accounts.VerifyPassword(r.Context(), user, password)
	if errors.Is(err, accounts.ErrAuthFailed) {
		s.log.WithField("user", user.String()).WithField("addr", clientAddr(r)).Info("syncapi: failed login")
		return loginResponse{}, fail()
	}
	if err != nil {
		return loginResponse{}, s.classify(r, err)
	}
	s.byUser.Succeed(acct)
	s.byAddr.Succeed(addr)
	if err := s.unlock(r.Context(), user, password); err != nil {
		return loginResponse{}, s.classify(r, err)
	}
	tok, exp, err := s.tokens.issue(user)
	if err != nil {
		s.cfg.Archive.Keys().Release(user)
		return loginResponse{}, s.classify(r, err)
	}
	return loginResponse{Token: tok, Expires: exp, JID: user.String()}, nil
}

// unlock opens the user's archive keys with the ClientKey of the password,
// as a PLAIN login does, provisioning keys for an account that has none,
// and indexes what arrived while the user was away.
func (s *Server) unlock(ctx context.Context, user jid.JID, password string) error {
	hash := domain.HashSHA256
	v, err := s.cfg.Accounts.Credentials(ctx, user, hash)
	if errors.Is(err, accounts.ErrNotFound) {
		hash = domain.HashSHA1
		v, err = s.cfg.Accounts.Credentials(ctx, user, hash)
	}
	if err != nil {
		return err
	}
	ck, err := archive.ClientKeyFromPassword(v, password)
	if err != nil {
		return err
	}
	defer clear(ck)
	keys := s.cfg.Archive.Keys()
	err = keys.Unlock(ctx, user, hash, ck)
	if errors.Is(err, archive.ErrNoKeys) {
		if err = keys.Provision(ctx, user, map[string][]byte{hash: ck}); err == nil {
			err = keys.Unlock(ctx, user, hash, ck)
		}
	}
	if err != nil {
		return err
	}
	if _, err := s.cfg.Archive.IndexPending(ctx, user); err != nil {
		s.log.WithError(err).WithField("user", user.String()).Warn("syncapi: indexing messages that arrived offline")
	}
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.tokens.revoke(r.Context().Value(tokenKey).(string))
	w.WriteHeader(http.StatusNoContent)
}

type deleteRequest struct {
	Password string `json:"password"`
}

// deleteAccount deletes the account after checking the password again: a
// stolen token alone must not be enough. The accounts hooks shred the
// archive keys.
func (s *Server) deleteAccount(w http.ResponseWriter, r *http.Request) {
	var req deleteRequest
	if !readJSON(w, r, &req) {
		return
	}
	if f := s.deleteWithPassword(r, userOf(r), req.Password); f != nil {
		writeFailure(w, f)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deleteWithPassword is the one account deletion path of the API and the
// web page. Wrong passwords count towards the login throttle.
func (s *Server) deleteWithPassword(r *http.Request, user jid.JID, password string) *failure {
	acct := "user:" + user.String()
	addr := "addr:" + clientAddr(r)
	if s.byUser.Blocked(acct) || s.byAddr.Blocked(addr) {
		return &failure{status: http.StatusTooManyRequests, code: "too_many_attempts", msg: "too many failed attempts; try again later", retryAfter: s.cfg.LoginPenalty}
	}
	err := s.cfg.Accounts.VerifyPassword(r.Context(), user, password)
	if errors.Is(err, accounts.ErrAuthFailed) {
		s.byUser.Fail(acct)
		s.byAddr.Fail(addr)
		return &failure{status: http.StatusForbidden, code: "auth_failed", msg: "wrong password"}
	}
	if err != nil {
		return s.classify(r, err)
	}
	s.tokens.revokeUser(user)
	if err := s.cfg.Accounts.Delete(r.Context(), user); err != nil {
		return s.classify(r, err)
	}
	return nil
}
