package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"mellium.im/sasl"
)

// conn is a minimal XMPP client: exactly what the load needs, spoken over
// the wire as any client would (STARTTLS, SASL SCRAM, bind), so that every
// server is measured through the same protocol path.
type conn struct {
	raw    net.Conn
	tls    *tls.Conn
	w      *bufio.Writer
	dec    *xml.Decoder
	domain string
	jid    string
}

// errFailure is a SASL or IQ failure reported by the server.
var errFailure = errors.New("server refused")

func dial(ctx context.Context, addr string, tlsCfg *tls.Config, domain string) (*conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{raw: raw, domain: domain}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	if err := c.open(raw); err != nil {
		raw.Close()
		return nil, err
	}
	feats, err := c.features()
	if err != nil {
		raw.Close()
		return nil, err
	}
	if !strings.Contains(feats, "starttls") {
		raw.Close()
		return nil, errors.New("server offers no STARTTLS")
	}
	if err := c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); err != nil {
		raw.Close()
		return nil, err
	}
	if name, _, err := c.next(); err != nil || name != "proceed" {
		raw.Close()
		return nil, fmt.Errorf("starttls: got %q: %v", name, err)
	}
	c.tls = tls.Client(raw, tlsCfg)
	if err := c.tls.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	if err := c.open(c.tls); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

func (c *conn) open(rw io.ReadWriter) error {
	c.w = bufio.NewWriterSize(rw, 4096)
	c.dec = xml.NewDecoder(bufio.NewReaderSize(rw, 4096))
	if err := c.send(fmt.Sprintf(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>`, c.domain)); err != nil {
		return err
	}
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return fmt.Errorf("stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return fmt.Errorf("stream header: got <%s>", se.Name.Local)
			}
			return nil
		}
	}
}

func (c *conn) send(s string) error {
	if _, err := c.w.WriteString(s); err != nil {
		return err
	}
	return c.w.Flush()
}

// element is the generic shape the client decodes stanzas into.
type element struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

func (e element) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// next reads the next top-level element.
func (c *conn) next() (string, element, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return "", element{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var e element
			if err := c.dec.DecodeElement(&e, &t); err != nil {
				return "", e, err
			}
			if t.Name.Local == "error" && t.Name.Space == "http://etherx.jabber.org/streams" {
				return "", e, fmt.Errorf("stream error: %s", e.Inner)
			}
			return t.Name.Local, e, nil
		case xml.EndElement:
			return "", element{}, io.EOF
		}
	}
}

func (c *conn) features() (string, error) {
	name, e, err := c.next()
	if err != nil {
		return "", fmt.Errorf("features: %w", err)
	}
	if name != "features" {
		return "", fmt.Errorf("features: got <%s>", name)
	}
	return e.Inner, nil
}

// register creates the account with in-band registration (XEP-0077).
func (c *conn) register(user, password string) error {
	if _, err := c.features(); err != nil {
		return err
	}
	if err := c.send(fmt.Sprintf(`<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>%s</username><password>%s</password></query></iq>`, xmlEscape(user), xmlEscape(password))); err != nil {
		return err
	}
	_, e, err := c.next()
	if err != nil {
		return err
	}
	if t := e.attr("type"); t != "result" {
		if strings.Contains(e.Inner, "conflict") {
			return nil // already there: fine for a load run
		}
		return fmt.Errorf("%w: register %s: %s", errFailure, user, e.Inner)
	}
	return nil
}

// login authenticates with mech and binds a resource. SCRAM keys come
// from keys when this account has logged in before (nil: no cache).
func (c *conn) login(user, password, mech, resource string, keys *keyCache) error {
	feats, err := c.features()
	if err != nil {
		return err
	}
	if !strings.Contains(feats, ">"+mech+"<") {
		return fmt.Errorf("server does not offer %s", mech)
	}
	if strings.HasPrefix(mech, "SCRAM-") {
		err = c.authSCRAM(user, password, mech, keys)
	} else {
		err = c.authMellium(user, password, mech)
	}
	if err != nil {
		return err
	}
	return c.bind(resource)
}

// authSCRAM runs SCRAM with the load tool's own client, which can reuse
// keys across logins. Servers send the server-final-message either as
// additional data with <success/> or as a last <challenge/>.
func (c *conn) authSCRAM(user, password, mech string, keys *keyCache) error {
	sc, err := newSCRAM(mech, user, password, keys)
	if err != nil {
		return err
	}
	if err := c.send(fmt.Sprintf(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>`, mech, base64.StdEncoding.EncodeToString([]byte(sc.first())))); err != nil {
		return err
	}
	step := 0
	verified := false
	for {
		name, e, err := c.next()
		if err != nil {
			return err
		}
		data, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Inner))
		switch {
		case name == "failure":
			return fmt.Errorf("%w: auth %s: %s", errFailure, user, e.Inner)
		case derr != nil:
			return fmt.Errorf("auth: <%s> payload: %w", name, derr)
		case name == "challenge" && step == 0:
			resp, err := sc.final(string(data))
			if err != nil {
				return err
			}
			step++
			if err := c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + base64.StdEncoding.EncodeToString([]byte(resp)) + `</response>`); err != nil {
				return err
			}
		case name == "challenge" && step == 1 && !verified:
			if err := sc.verify(string(data)); err != nil {
				return err
			}
			verified = true
			if err := c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`); err != nil {
				return err
			}
		case name == "success" && step == 1:
			if !verified {
				if err := sc.verify(string(data)); err != nil {
					return err
				}
			}
			return nil
		default:
			return fmt.Errorf("auth: unexpected <%s> at step %d", name, step)
		}
	}
}

func (c *conn) authMellium(user, password, mech string) error {
	var m sasl.Mechanism
	switch mech {
	case "PLAIN":
		m = sasl.Plain
	default:
		return fmt.Errorf("mechanism %s not supported by the load tool", mech)
	}
	neg := sasl.NewClient(m, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(user), []byte(password), nil
	}), sasl.TLSState(c.tls.ConnectionState()))
	_, resp, err := neg.Step(nil)
	if err != nil {
		return err
	}
	if err := c.send(fmt.Sprintf(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>`, mech, base64.StdEncoding.EncodeToString(resp))); err != nil {
		return err
	}
	name, e, err := c.next()
	if err != nil {
		return err
	}
	if name != "success" {
		return fmt.Errorf("%w: auth %s: <%s>%s", errFailure, user, name, e.Inner)
	}
	return nil
}

// bind restarts the stream and binds resource.
func (c *conn) bind(resource string) error {
	if err := c.open(c.tls); err != nil {
		return err
	}
	if _, err := c.features(); err != nil {
		return err
	}
	if err := c.send(fmt.Sprintf(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>`, resource)); err != nil {
		return err
	}
	_, e, err := c.next()
	if err != nil {
		return err
	}
	if e.attr("type") != "result" {
		return fmt.Errorf("%w: bind: %s", errFailure, e.Inner)
	}
	var b struct {
		JID string `xml:"bind>jid"`
	}
	if err := xml.Unmarshal([]byte("<x>"+e.Inner+"</x>"), &b); err != nil {
		return err
	}
	c.jid = b.JID
	// Legacy session establishment, which old servers still want.
	return c.send(`<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`)
}

func (c *conn) close() {
	c.raw.SetDeadline(time.Now().Add(2 * time.Second))
	c.send("</stream:stream>")
	c.raw.Close()
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
