package stream

import (
	"errors"
	"io"
	"strings"
	"testing"
)

const (
	c2sHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' xml:lang='en'>`
	s2sHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='example.net' to='example.org' version='1.0'>`
)

// open returns a Reader positioned after a valid c2s header.
func open(t testing.TB, body string, lim Limits) *Reader {
	t.Helper()
	return openOn(t, strings.NewReader(c2sHeader+body), lim)
}

func openOn(t testing.TB, src io.Reader, lim Limits) *Reader {
	t.Helper()
	r := NewReader(src, lim)
	if _, err := r.ReadHeader(); err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	return r
}

// readAll returns the elements up to the first error.
func readAll(r *Reader) ([]*Element, error) {
	var els []*Element
	for {
		el, err := r.Next()
		if err != nil {
			return els, err
		}
		els = append(els, el)
	}
}

// countingReader counts the bytes the Reader pulled from its source.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// repeatReader yields s forever.
type repeatReader struct {
	s   string
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.off:])
		n += c
		r.off = (r.off + c) % len(r.s)
	}
	return n, nil
}

func wantCondition(t *testing.T, err error, want Condition) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", want)
	}
	got, ok := ConditionOf(err)
	if !ok || got != want {
		t.Fatalf("error %v maps to %q (%v), want %q", err, got, ok, want)
	}
}

var errAny = errors.New("any")
