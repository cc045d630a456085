package listen

import (
	"net"
	"testing"
)

func TestOpenAddrClose(t *testing.T) {
	var s Set
	if err := s.Open("127.0.0.1:0", ""); err != nil {
		t.Fatal(err)
	}
	if s.Addr(false) == nil || s.Addr(true) != nil || len(s.Listeners()) != 1 {
		t.Fatalf("one STARTTLS listener expected: %v %v %d", s.Addr(false), s.Addr(true), len(s.Listeners()))
	}
	addr := s.Addr(false).String()
	s.Close()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("still accepting after Close")
	}
}

// A bad second address closes the first, so nothing is left listening.
func TestOpenFailsWhole(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var s Set
	if err := s.Open("127.0.0.1:0", busy.Addr().String()); err == nil {
		t.Fatal("opened a port already in use")
	}
	for _, l := range s.Listeners() {
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			c.Close()
			t.Fatalf("%s still accepting after a failed Open", l.Addr())
		}
	}
}
