// Package listen opens the pair of sockets every XMPP service listens on:
// one for STARTTLS and one for direct TLS (XEP-0368). The c2s and s2s
// servers each keep a Set; accepting and what follows stays theirs.
package listen

import (
	"net"
	"sync"
)

// Listener is one listening socket and how its connections start.
type Listener struct {
	net.Listener
	// Direct is true for direct TLS, false for STARTTLS.
	Direct bool
}

// Set is a service's listeners. The zero value is empty and ready to use;
// it is safe for concurrent use.
type Set struct {
	mu sync.Mutex
	ls []Listener
}

// Open listens on the STARTTLS and the direct-TLS address, skipping an
// empty one. On an error it closes what it opened, so that a bad address
// fails before anything starts.
func (s *Set) Open(starttls, direct string) error {
	for _, a := range []struct {
		addr   string
		direct bool
	}{{starttls, false}, {direct, true}} {
		if a.addr == "" {
			continue
		}
		l, err := net.Listen("tcp", a.addr)
		if err != nil {
			s.Close()
			return err
		}
		s.mu.Lock()
		s.ls = append(s.ls, Listener{l, a.direct})
		s.mu.Unlock()
	}
	return nil
}

// Listeners returns the open listeners.
func (s *Set) Listeners() []Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Listener(nil), s.ls...)
}

// Addr returns the address of the STARTTLS listener (direct false) or the
// direct-TLS one, nil if there is none.
func (s *Set) Addr(direct bool) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.ls {
		if l.Direct == direct {
			return l.Addr()
		}
	}
	return nil
}

// Close closes every listener; accept loops then end.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.ls {
		_ = l.Close()
	}
}
