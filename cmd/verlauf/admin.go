package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/userdata"
)

// The admin socket lets `verlauf user …` change accounts while the server
// runs, without opening the store a second time (the embedded store is
// locked by the server, and two writers would break its guarantees). It is
// a Unix socket in the data directory, mode 0600: whoever can use it could
// read the data directory anyway.
//
// The protocol is one JSON request line per connection (newline-ended),
// answered by one JSON response; export and import go on with frames
// (frame.go): see serveExport and serveImport.

type adminRequest struct {
	Op       string `json:"op"` // user.add, user.passwd, user.delete, user.list, export, import
	JID      string `json:"jid,omitempty"`
	Password string `json:"password,omitempty"`
	// Export.
	Format string `json:"format,omitempty"`
	// Import: the files that follow, in order: the includes, then the
	// main file, last.
	Files []importFile `json:"files,omitempty"`
	Merge bool         `json:"merge,omitempty"`
}

type adminResponse struct {
	Error string   `json:"error,omitempty"`
	Code  string   `json:"code,omitempty"` // for errors the CLI words itself: see the err* codes
	Users []string `json:"users,omitempty"`
	// Export: the manifest, in the trailer.
	Manifest *userdata.Manifest `json:"manifest,omitempty"`
	// Import: what was imported, in the trailer (also beside an error,
	// for a store failure half way).
	Import    *importResult `json:"import,omitempty"`
	FileError *fileError    `json:"file_error,omitempty"`
}

// Error codes of adminResponse.Code.
const (
	codeAuthFailed    = "auth_failed"
	codeThrottled     = "throttled"
	codeMalformed     = "malformed"
	codeWrongPassword = "wrong_password"
	codeExists        = "exists"
)

// accountAdmin is what the admin socket needs from the accounts service.
type accountAdmin interface {
	Register(ctx context.Context, user jid.JID, password string) error
	ChangePassword(ctx context.Context, user jid.JID, password string) error
	Delete(ctx context.Context, user jid.JID) error
	List(ctx context.Context) ([]jid.JID, error)
	VerifyPassword(ctx context.Context, user jid.JID, password string) error
	Credentials(ctx context.Context, user jid.JID, hash string) (domain.SCRAMVerifier, error)
}

// archiveKeys is what export needs of archive.Keys: the user's keys are
// open while their history is read.
type archiveKeys interface {
	Unlock(ctx context.Context, user jid.JID, hash string, clientKey []byte) error
	Release(user jid.JID)
	Provision(ctx context.Context, user jid.JID, clientKeys map[string][]byte) error
}

// adminServer is what the admin socket serves from.
type adminServer struct {
	domain string
	accts  accountAdmin
	// data, keys and indexPending serve export and import; with a nil
	// data.Store those operations are refused.
	data         userdata.Deps
	keys         archiveKeys
	indexPending func(ctx context.Context, user jid.JID) (int, error)
	// spoolDir holds included import files while an import runs,
	// encrypted under a key that lives in memory only.
	spoolDir string
	// throttle counts wrong passwords given to export, per account, as
	// the front ends count failed logins.
	throttle *accounts.Throttle
	log      *logrus.Entry
}

func adminSocketPath(cfg Config) string {
	p := cfg.Server.AdminSocket
	if !filepath.IsAbs(p) {
		p = filepath.Join(cfg.Server.DataDir, p)
	}
	return p
}

// serveAdmin accepts admin connections until ctx is done.
func serveAdmin(ctx context.Context, path string, s *adminServer) error {
	if s.spoolDir != "" {
		// Spools a killed server left behind: their key died with it.
		if err := os.RemoveAll(s.spoolDir); err != nil {
			return fmt.Errorf("admin socket: %w", err)
		}
	}
	// A socket left by a killed server would make Listen fail; nobody else
	// can be serving on it, because the store lock is ours.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("admin socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	defer func() {
		wg.Wait()
		os.Remove(path)
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("admin socket: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			// A stream in progress ends with the server.
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			s.serveConn(ctx, c)
		}()
	}
}

// maxRequestLine bounds the JSON request line.
const maxRequestLine = 64 << 10

func (s *adminServer) serveConn(ctx context.Context, c net.Conn) {
	// Short operations must be over within a minute; a stream (export,
	// import) only must keep moving: each read waits at most adminIdle.
	c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReaderSize(idleConn{c, adminIdle}, maxRequestLine)
	var req adminRequest
	line, err := br.ReadSlice('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err != nil {
		json.NewEncoder(c).Encode(adminResponse{Error: "bad request: " + err.Error()})
		return
	}
	var resp adminResponse
	switch req.Op {
	case "export":
		resp = s.serveExport(ctx, c, req)
	case "import":
		resp = s.serveImport(ctx, c, br, req)
	default:
		resp = handleAdmin(ctx, req, s.domain, s.accts)
		json.NewEncoder(c).Encode(resp)
	}
	// The password is never logged.
	s.log.WithFields(logrus.Fields{"op": req.Op, "jid": req.JID, "ok": resp.Error == ""}).Info("admin request")
}

func handleAdmin(ctx context.Context, req adminRequest, domain string, accts accountAdmin) adminResponse {
	if req.Op == "user.list" {
		users, err := accts.List(ctx)
		if err != nil {
			return adminResponse{Error: err.Error()}
		}
		out := make([]string, 0, len(users))
		for _, u := range users {
			out = append(out, u.String())
		}
		return adminResponse{Users: out}
	}
	user, err := userJID(req.JID, domain)
	if err != nil {
		return adminResponse{Error: err.Error()}
	}
	switch req.Op {
	case "user.add":
		err = accts.Register(ctx, user, req.Password)
	case "user.passwd":
		err = accts.ChangePassword(ctx, user, req.Password)
	case "user.delete":
		err = accts.Delete(ctx, user)
	default:
		err = fmt.Errorf("unknown operation %q", req.Op)
	}
	if err != nil {
		return adminResponse{Error: err.Error()}
	}
	return adminResponse{}
}

// userJID accepts "alice" or "alice@domain" for an account of this server.
func userJID(s, domain string) (jid.JID, error) {
	if s == "" {
		return jid.JID{}, errors.New("no JID given")
	}
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("invalid JID %q: %w", s, err)
	}
	if j.Localpart() == "" {
		// "alice" parses as a domain; it is meant as a local user.
		if j, err = jid.New(s, domain, ""); err != nil {
			return jid.JID{}, fmt.Errorf("invalid username %q: %w", s, err)
		}
	}
	if j.Domainpart() != domain {
		return jid.JID{}, fmt.Errorf("%s is not an account of %s", j, domain)
	}
	if j.Resourcepart() != "" {
		return jid.JID{}, fmt.Errorf("%s: an account JID has no resource", j)
	}
	return j, nil
}

// adminCall sends one request to the running server.
func adminCall(ctx context.Context, path string, req adminRequest) (adminResponse, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return adminResponse{}, fmt.Errorf("is the server running? cannot reach its admin socket %s: %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return adminResponse{}, fmt.Errorf("admin socket: %w", err)
	}
	var resp adminResponse
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&resp); err != nil {
		return adminResponse{}, fmt.Errorf("admin socket: %w", err)
	}
	return resp, nil
}

// adminServer wires the admin socket to the node's services.
func (n *node) adminServer() *adminServer {
	return &adminServer{
		domain:       n.cfg.Server.Domain,
		accts:        n.accounts,
		data:         n.userData(),
		keys:         n.archive.Keys(),
		indexPending: n.archive.IndexPending,
		spoolDir:     filepath.Join(n.cfg.Server.DataDir, "import-spool"),
		throttle:     accounts.NewThrottle(n.cfg.C2S.AuthFailures, n.cfg.C2S.AuthPenalty.Duration, nil),
		log:          n.log.WithField("component", "admin"),
	}
}

// adminDial opens a connection for a streaming operation and sends its
// request line. The connection closes when ctx ends (an interrupt).
func adminDial(ctx context.Context, path string, req adminRequest) (net.Conn, func() bool, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("is the server running? cannot reach its admin socket %s: %w", path, err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	if err := json.NewEncoder(c).Encode(req); err != nil {
		stop()
		c.Close()
		return nil, nil, fmt.Errorf("admin socket: %w", err)
	}
	return c, stop, nil
}

// userData is what exports and imports read and write, for the admin
// socket and the HTTPS API alike.
func (n *node) userData() userdata.Deps {
	return userdata.Deps{
		Store:          n.store,
		Archive:        n.archive,
		Accounts:       n.accounts,
		Keys:           n.archive.Keys(),
		MaxRosterItems: n.cfg.C2S.MaxRosterItems,
	}
}
