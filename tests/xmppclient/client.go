// Package xmppclient wraps mellium.im/xmpp, a client library nobody on this
// project wrote, for the end-to-end tests: log in, send raw XML, and wait
// for stanzas that match.
package xmppclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stream"
)

// Wait is how long Expect waits for a stanza.
const Wait = 10 * time.Second

// Client is a logged-in mellium session whose incoming stanzas are parsed
// into a channel.
type Client struct {
	S      *xmpp.Session
	JID    jid.JID
	In     chan *stream.Element
	served chan error
}

// Options for Dial.
type Options struct {
	Addr     string // host:port of the STARTTLS listener
	User     string // bare JID
	Password string
	Resource string // "" for a server-chosen one
	Mech     sasl.Mechanism
	TLS      *tls.Config
}

// Dial logs in over STARTTLS and binds a resource.
func Dial(ctx context.Context, o Options) (*Client, error) {
	conn, err := net.Dial("tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	origin, err := jid.Parse(o.User)
	if err != nil {
		return nil, err
	}
	if o.Resource != "" {
		if origin, err = origin.WithResource(o.Resource); err != nil {
			return nil, err
		}
	}
	if o.Mech.Name == "" {
		o.Mech = sasl.ScramSha256
	}
	s, err := xmpp.NewClientSession(ctx, origin, conn,
		xmpp.StartTLS(o.TLS),
		xmpp.SASL("", o.Password, o.Mech),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return Serve(s), nil
}

// MustDial is Dial that fails the test, and closes the session at the end.
func MustDial(t testing.TB, o Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	c, err := Dial(ctx, o)
	if err != nil {
		t.Fatalf("login %s: %v", o.User, err)
	}
	t.Cleanup(func() { c.S.Close() })
	return c
}

// Serve reads the session's incoming stanzas into the Client's channel.
func Serve(s *xmpp.Session) *Client {
	c := &Client{S: s, JID: s.LocalAddr(), In: make(chan *stream.Element, 256), served: make(chan error, 1)}
	go func() {
		c.served <- s.Serve(xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			var buf bytes.Buffer
			enc := xml.NewEncoder(&buf)
			if err := enc.EncodeToken(stripDecls(*start)); err != nil {
				return err
			}
			for {
				tok, err := t.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				if se, ok := tok.(xml.StartElement); ok {
					tok = stripDecls(se)
				}
				if err := enc.EncodeToken(tok); err != nil {
					return err
				}
			}
			if err := enc.Flush(); err != nil {
				return err
			}
			el, err := Parse(buf.Bytes())
			if err != nil {
				return err
			}
			// Answer pings, as real clients do.
			if el.Name.Local == "iq" && el.Attr("type") == "get" && el.Child("ping", "urn:xmpp:ping") != nil {
				res := fmt.Sprintf("<iq xmlns='jabber:client' type='result' id='%s' to='%s'/>", el.Attr("id"), el.Attr("from"))
				if _, err := xmlstream.Copy(t, xml.NewDecoder(strings.NewReader(res))); err != nil {
					return err
				}
			}
			select {
			case c.In <- el:
			default: // a test that does not read must not block the session
			}
			return nil
		}))
	}()
	return c
}

// stripDecls drops namespace declarations, which encoding/xml's Encoder
// writes again from the names and would then duplicate.
func stripDecls(se xml.StartElement) xml.StartElement {
	attrs := se.Attr[:0:0]
	for _, a := range se.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		attrs = append(attrs, a)
	}
	se.Attr = attrs
	return se
}

// Parse parses one stanza as it arrives on a jabber:client stream.
func Parse(b []byte) (*stream.Element, error) {
	const hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	r := stream.NewReader(io.MultiReader(strings.NewReader(hdr), bytes.NewReader(b)), stream.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	return r.Next()
}

// Send writes raw XML on the stream.
func (c *Client) Send(t testing.TB, raw string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := c.S.Send(ctx, xml.NewDecoder(strings.NewReader(raw))); err != nil {
		t.Fatalf("%s: send: %v", c.JID, err)
	}
}

// Expect returns the next stanza that matches; the ones before it are
// skipped.
func (c *Client) Expect(t testing.TB, what string, match func(*stream.Element) bool) *stream.Element {
	t.Helper()
	timer := time.NewTimer(Wait)
	defer timer.Stop()
	for {
		select {
		case el := <-c.In:
			if match(el) {
				return el
			}
		case err := <-c.served:
			t.Fatalf("%s: stream ended waiting for %s: %v", c.JID, what, err)
		case <-timer.C:
			t.Fatalf("%s: no %s within %v", c.JID, what, Wait)
		}
	}
}

// ExpectID waits for the stanza with the given id (an IQ answer).
func (c *Client) ExpectID(t testing.TB, id string) *stream.Element {
	t.Helper()
	return c.Expect(t, "reply to "+id, func(e *stream.Element) bool { return e.Attr("id") == id })
}

// Ended waits for the server to end the stream and returns why.
func (c *Client) Ended(t testing.TB) error {
	t.Helper()
	select {
	case err := <-c.served:
		return err
	case <-time.After(Wait):
		t.Fatalf("%s: stream still open", c.JID)
		return nil
	}
}
