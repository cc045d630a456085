package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/userdata"
)

// Defaults of Config.
const (
	DefaultTokenTTL      = 15 * time.Minute
	DefaultLoginFailures = 5
	DefaultLoginPenalty  = time.Minute
	DefaultMaxWait       = time.Minute
	DefaultPollInterval  = 2 * time.Second
	// maxBody bounds a request body; the largest legitimate one is a
	// prefs document.
	maxBody = 256 << 10
)

// Config configures a Server. Accounts and Archive are required.
type Config struct {
	Accounts *accounts.Service
	Archive  *archive.Service
	Log      *logrus.Entry
	// Clock decides token expiry (domain.SystemClock).
	Clock domain.Clock
	// TokenTTL is how long a token is valid (DefaultTokenTTL).
	TokenTTL time.Duration
	// LoginFailures is how many failed logins an account may see before
	// it is refused for LoginPenalty (DefaultLoginFailures);
	// LoginFailuresPerAddress is the same per client IP (4×LoginFailures:
	// an address may be a NAT).
	LoginFailures, LoginFailuresPerAddress int
	LoginPenalty                           time.Duration
	// MaxWait caps a long-poll's ?wait= (DefaultMaxWait).
	MaxWait time.Duration
	// PollInterval is how often a waiting sync re-reads without a
	// notification (DefaultPollInterval).
	PollInterval time.Duration
	// UserData are the services and limits the compliance export works
	// on (GET /api/v1/export, the web page's download). Its Archive and
	// Accounts default to the fields above. Without UserData.Store the
	// export answers 503 export_unavailable.
	UserData userdata.Deps
}

// Server is the sync API. It is safe for concurrent use.
type Server struct {
	cfg      Config
	log      *logrus.Entry
	tokens   *tokens
	byUser   *accounts.Throttle
	byAddr   *accounts.Throttle
	notifier notifier
	mux      *http.ServeMux
	web      *web
	// routes are the method and pattern of every route, for the OpenAPI
	// check.
	routes []string
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Accounts == nil || cfg.Archive == nil {
		return nil, errors.New("syncapi: accounts and archive are required")
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Log = logrus.NewEntry(l)
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.LoginFailures <= 0 {
		cfg.LoginFailures = DefaultLoginFailures
	}
	if cfg.LoginFailuresPerAddress <= 0 {
		cfg.LoginFailuresPerAddress = 4 * cfg.LoginFailures
	}
	if cfg.LoginPenalty <= 0 {
		cfg.LoginPenalty = DefaultLoginPenalty
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.UserData.Archive == nil {
		cfg.UserData.Archive = cfg.Archive
	}
	if cfg.UserData.Accounts == nil {
		cfg.UserData.Accounts = cfg.Accounts
	}
	if cfg.UserData.Clock == nil {
		cfg.UserData.Clock = cfg.Clock
	}
	if cfg.UserData.Store == nil {
		cfg.Log.Warn("syncapi: no event store for the export; GET /api/v1/export answers 503")
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Log,
		byUser:   accounts.NewThrottle(cfg.LoginFailures, cfg.LoginPenalty, cfg.Clock.Now),
		byAddr:   accounts.NewThrottle(cfg.LoginFailuresPerAddress, cfg.LoginPenalty, cfg.Clock.Now),
		notifier: notifier{m: map[string]chan struct{}{}},
		mux:      http.NewServeMux(),
	}
	s.tokens = newTokens(cfg.Clock, cfg.TokenTTL, func(u jid.JID) { cfg.Archive.Keys().Release(u) })
	s.route("POST /api/v1/login", s.login)
	s.route("POST /api/v1/logout", s.authed(s.logout))
	s.route("GET /api/v1/history", s.authed(s.history))
	s.route("GET /api/v1/sync", s.authed(s.sync))
	s.route("GET /api/v1/prefs", s.authed(s.getPrefs))
	s.route("PUT /api/v1/prefs", s.authed(s.putPrefs))
	s.route("POST /api/v1/forget", s.authed(s.forget))
	s.route("DELETE /api/v1/account", s.authed(s.deleteAccount))
	s.route("GET /api/v1/export", s.authed(s.export))
	if err := s.registerWeb(); err != nil {
		return nil, err
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return s, nil
}

func (s *Server) route(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, h)
}

// Handler returns the API's HTTP handler. Serve it over TLS only.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		s.mux.ServeHTTP(w, r)
	})
}

// Close ends every token and releases the keys they hold.
func (s *Server) Close() { s.tokens.closeAll() }

// HandleEvent wakes the syncs waiting on the user whose archive an event
// was appended to. It has the shape of eventstore.Handler, for the bus's
// log topic (as archive.Service.HandleEvent).
func (s *Server) HandleEvent(_ context.Context, ev eventstore.RecordedEvent) error {
	if domain.StreamConcern(ev.Stream) != domain.ConcernArchive {
		return nil
	}
	_, user, err := domain.SplitStream(ev.Stream)
	if err != nil {
		return nil
	}
	s.notifier.notify(user.String())
	return nil
}

// notifier hands out a channel per user that is closed at the next
// append to the user's archive.
type notifier struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (n *notifier) wait(u string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.m[u]
	if c == nil {
		c = make(chan struct{})
		n.m[u] = c
	}
	return c
}

func (n *notifier) notify(u string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.m[u]; c != nil {
		close(c)
		delete(n.m, u)
	}
}

// apiError is the body of every error answer.
type apiError struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{errorBody{Code: code, Message: msg}})
}

// readJSON decodes a bounded JSON body into v, refusing unknown fields and
// trailing data.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body exceeds %d bytes", maxBody))
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_request", "the body is not the expected JSON: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad_request", "trailing data after the JSON body")
		return false
	}
	return true
}

// failure is an error answer: the API writes it as JSON (writeFailure),
// the web page as HTML.
type failure struct {
	status     int
	code, msg  string
	retryAfter time.Duration
}

func writeFailure(w http.ResponseWriter, f *failure) {
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter.Seconds())))
	}
	writeError(w, f.status, f.code, f.msg)
}

// archiveError answers an error of the archive or accounts services.
func (s *Server) archiveError(w http.ResponseWriter, r *http.Request, err error) {
	writeFailure(w, s.classify(r, err))
}

// classify maps an error of the archive or accounts services to an
// answer, logging the unexpected ones.
func (s *Server) classify(r *http.Request, err error) *failure {
	switch {
	case errors.Is(err, archive.ErrInvalid), errors.Is(err, domain.ErrInvalidPrefs), errors.Is(err, domain.ErrInvalidJID):
		return &failure{status: http.StatusBadRequest, code: "invalid_argument", msg: err.Error()}
	case errors.Is(err, archive.ErrItemNotFound):
		return &failure{status: http.StatusNotFound, code: "item_not_found", msg: "no such archive id"}
	case errors.Is(err, archive.ErrLocked), errors.Is(err, archive.ErrNoKeys):
		return &failure{status: http.StatusUnauthorized, code: "session_locked", msg: "the archive keys are not unlocked; log in again"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &failure{status: http.StatusServiceUnavailable, code: "unavailable", msg: "the request was cancelled"}
	default:
		s.log.WithError(err).WithField("path", r.URL.Path).Error("syncapi: internal error")
		return &failure{status: http.StatusInternalServerError, code: "internal", msg: "internal error"}
	}
}
