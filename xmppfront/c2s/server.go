package c2s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/xmppfront/listen"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Server accepts client connections and runs their sessions.
type Server struct {
	cfg       Config
	acctFails *accounts.Throttle
	addrFails *accounts.Throttle

	mu       sync.Mutex
	listen   listen.Set
	sessions map[*session]struct{}
	perAddr  map[string]int
	closing  bool
	done     chan struct{} // closed by Shutdown
	wg       sync.WaitGroup
}

// New checks cfg and returns a server that is not listening yet.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg:       cfg,
		acctFails: accounts.NewThrottle(cfg.AuthFailures, cfg.AuthPenalty, cfg.Now),
		addrFails: accounts.NewThrottle(cfg.AuthFailuresPerAddress, cfg.AuthPenalty, cfg.Now),
		sessions:  make(map[*session]struct{}),
		perAddr:   make(map[string]int),
		done:      make(chan struct{}),
	}, nil
}

// Listen opens the configured listeners, so that a bad address fails
// before anything else starts and tests can listen on port 0.
func (s *Server) Listen() error {
	if err := s.listen.Open(s.cfg.Listen, s.cfg.ListenTLS); err != nil {
		return fmt.Errorf("c2s: listen: %w", err)
	}
	return nil
}

// Addr returns the address of the STARTTLS listener (direct false) or the
// direct TLS one, nil if there is none.
func (s *Server) Addr(direct bool) net.Addr { return s.listen.Addr(direct) }

// Serve accepts connections until ctx ends or Shutdown is called, then
// shuts down gracefully within Config.ShutdownTimeout. It calls Listen if
// that was not done.
func (s *Server) Serve(ctx context.Context) error {
	n := len(s.listen.Listeners())
	if n == 0 {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	ls := s.listen.Listeners()
	if len(ls) == 0 {
		return errors.New("c2s: no listener configured")
	}
	// Sessions outlive ctx until the shutdown below has told them.
	base := context.WithoutCancel(ctx)
	var accepting sync.WaitGroup
	for _, l := range ls {
		accepting.Add(1)
		go func() {
			defer accepting.Done()
			s.accept(base, l)
		}()
	}
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(base, s.cfg.ShutdownTimeout)
		_ = s.Shutdown(sctx)
		cancel()
	case <-s.done:
	}
	accepting.Wait()
	s.wg.Wait()
	return nil
}

// Shutdown stops accepting, ends every stream with a system-shutdown
// stream error and waits for the sessions to finish until ctx ends, when
// the remaining connections are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closing = true
	close(s.done)
	sessions := make([]*session, 0, len(s.sessions))
	for c := range s.sessions {
		sessions = append(sessions, c)
	}
	s.mu.Unlock()
	s.closeListeners()
	for _, c := range sessions {
		c.kill(stream.SystemShutdown, "")
	}
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		// Out of time: cut the sockets, and abort the handlers still at
		// work (a graceful finish lets queued stanzas complete, and one
		// may be waiting on something that shutdown stops).
		s.mu.Lock()
		for c := range s.sessions {
			_ = c.raw.Close()
			c.cancel()
		}
		s.mu.Unlock()
		<-finished
		return ctx.Err()
	}
}

func (s *Server) closeListeners() { s.listen.Close() }

func (s *Server) accept(ctx context.Context, l listen.Listener) {
	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as
			// net/http does, instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.cfg.Log.WithError(err).Warn("c2s: accept")
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := s.admit(ctx, conn, l.Direct)
		if c == nil {
			continue
		}
		go c.run()
	}
}

// admit applies the connection limits. A connection over a limit is
// refused at once: on the STARTTLS port with a stream header and a stream
// error (resource-constraint for the total, policy-violation for one
// address), which costs one small write; on the direct TLS port by closing
// it, since answering would need a TLS handshake, the very cost the limit
// is there to cap.
func (s *Server) admit(ctx context.Context, conn net.Conn, direct bool) *session {
	addr := remoteIP(conn.RemoteAddr())
	var refuse stream.Condition
	s.mu.Lock()
	switch {
	case s.closing:
		refuse = stream.SystemShutdown
	case len(s.sessions) >= s.cfg.MaxConnections:
		refuse = stream.ResourceConstraint
	case s.perAddr[addr] >= s.cfg.MaxPerAddress:
		refuse = stream.PolicyViolation
	}
	if refuse != "" {
		s.mu.Unlock()
		if !direct {
			_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			w := stream.NewWriter(conn)
			_ = w.WriteHeader(stream.Header{From: s.cfg.Domain, Version: "1.0"})
			_ = w.WriteError(stream.StreamError{Condition: refuse, Text: "too many connections"})
		}
		_ = conn.Close()
		return nil
	}
	c := newSession(ctx, s, conn, addr, direct)
	s.sessions[c] = struct{}{}
	s.perAddr[addr]++
	s.wg.Add(1)
	s.mu.Unlock()
	return c
}

// release is called by a session when its connection is closed.
func (s *Server) release(c *session) {
	s.mu.Lock()
	delete(s.sessions, c)
	if s.perAddr[c.addr]--; s.perAddr[c.addr] <= 0 {
		delete(s.perAddr, c.addr)
	}
	s.mu.Unlock()
	s.wg.Done()
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
