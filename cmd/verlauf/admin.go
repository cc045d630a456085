package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"
)

// The admin socket lets `verlauf user …` change accounts while the server
// runs, without opening the store a second time (the embedded store is
// locked by the server, and two writers would break its guarantees). It is
// a Unix socket in the data directory, mode 0600: whoever can use it could
// read the data directory anyway.
//
// The protocol is one JSON request and one JSON response per connection.

type adminRequest struct {
	Op       string `json:"op"` // user.add, user.passwd, user.delete, user.list
	JID      string `json:"jid,omitempty"`
	Password string `json:"password,omitempty"`
}

type adminResponse struct {
	Error string   `json:"error,omitempty"`
	Users []string `json:"users,omitempty"`
}

// accountAdmin is what the admin socket needs from the accounts service.
type accountAdmin interface {
	Register(ctx context.Context, user jid.JID, password string) error
	ChangePassword(ctx context.Context, user jid.JID, password string) error
	Delete(ctx context.Context, user jid.JID) error
	List(ctx context.Context) ([]jid.JID, error)
}

func adminSocketPath(cfg Config) string {
	p := cfg.Server.AdminSocket
	if !filepath.IsAbs(p) {
		p = filepath.Join(cfg.Server.DataDir, p)
	}
	return p
}

// serveAdmin accepts admin connections until ctx is done.
func serveAdmin(ctx context.Context, path, domain string, accts accountAdmin, log *logrus.Entry) error {
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
			c.SetDeadline(time.Now().Add(time.Minute))
			var req adminRequest
			var resp adminResponse
			if err := json.NewDecoder(io.LimitReader(c, 64<<10)).Decode(&req); err != nil {
				resp.Error = "bad request: " + err.Error()
			} else {
				resp = handleAdmin(ctx, req, domain, accts)
				// The password is never logged.
				log.WithFields(logrus.Fields{"op": req.Op, "jid": req.JID, "ok": resp.Error == ""}).Info("admin request")
			}
			json.NewEncoder(c).Encode(resp)
		}()
	}
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
