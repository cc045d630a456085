package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stream"
)

// maxSASLFailures ends a stream that keeps failing EXTERNAL.
const maxSASLFailures = 3

// maxPendingDialback bounds the dialback checks one inbound stream may
// have in flight. Each makes us connect to the claimed domain's server:
// without a bound, one TLS connection from anyone could have us open
// connections to as many hosts as it names. A real server claims one
// domain at a time, or a handful when it multiplexes.
const maxPendingDialback = 8

// inbound is one stream a peer opened to us.
type inbound struct {
	s      *Server
	direct bool
	log    *logrus.Entry
	raw    net.Conn
	conn   net.Conn
	tls    *tls.Conn
	r      *stream.Reader

	wmu     sync.Mutex // guards w and wclosed
	w       *stream.Writer
	wclosed bool
	killed  atomic.Bool

	ctx      context.Context
	cancel   context.CancelFunc
	pending  sync.WaitGroup // dialback checks in flight
	inFlight atomic.Int32   // how many: bounded by maxPendingDialback

	id       string // our stream id, which dialback keys are bound to
	from     string // the domain the peer's header named
	sasl     bool   // SASL succeeded: no more negotiation
	failures int

	amu    sync.Mutex
	authed map[string]bool // domains the peer proved on this stream
}

func newInbound(s *Server, conn net.Conn, direct bool) *inbound {
	c := &inbound{s: s, direct: direct, raw: conn, conn: conn, authed: make(map[string]bool)}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.log = s.cfg.Log.WithFields(logrus.Fields{"addr": conn.RemoteAddr().String(), "dir": "in"})
	return c
}

func (c *inbound) run() {
	c.r = stream.NewReader(c.conn, c.s.cfg.Limits)
	c.r.SetKeepaliveHook(func(int) { c.extendDeadline() })
	c.w = stream.NewWriter(c.conn)
	graceful := false
	if !c.direct || c.startTLS() {
		for {
			restart, ok := c.stream()
			if !restart {
				graceful = ok
				break
			}
		}
	}
	c.cancel()
	c.pending.Wait()
	if graceful {
		c.writeLocked(func(w *stream.Writer) error {
			if c.wclosed {
				return nil
			}
			c.wclosed = true
			return w.Close()
		})
	}
	if c.tls != nil {
		_ = c.raw.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_ = c.tls.CloseWrite()
	}
	if tcp, ok := c.raw.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
	}
	// Read what the peer still sends for a moment, so the kernel does not
	// reset the connection under our stream error.
	_ = c.raw.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.raw, 1<<20))
	_ = c.raw.Close()
}

// stream serves one stream from its header to a restart or the end; ok
// reports a clean end by the peer.
func (c *inbound) stream() (restart, ok bool) {
	c.extendDeadline()
	h, err := c.r.ReadHeader()
	if err != nil {
		return false, c.readFailed(err)
	}
	c.id = randomID(12)
	hdr := stream.Header{
		From: c.s.cfg.Domain, ID: c.id, Version: "1.0", Namespace: stream.NSServer,
		Decls: map[string]string{"db": NSDialback},
	}
	if f, err := jid.Parse(h.From); err == nil && h.From != "" {
		hdr.To = f.Domainpart()
		c.from = f.Domainpart()
		c.log = c.log.WithField("peer", c.from)
	}
	if !c.writeLocked(func(w *stream.Writer) error { return w.WriteHeader(hdr) }) {
		return false, false
	}
	if h.Namespace != stream.NSServer {
		c.fail(stream.InvalidNamespace, "this port serves jabber:server")
		return false, false
	}
	if h.To != "" && !strings.EqualFold(h.To, c.s.cfg.Domain) {
		c.fail(stream.HostUnknown, "")
		return false, false
	}
	if !c.write(c.features()) {
		return false, false
	}
	for {
		c.extendDeadline()
		el, err := c.r.Next()
		if err != nil {
			return false, c.readFailed(err)
		}
		if c.tls == nil {
			// RFC 6120 §5.3.1 and our promise: TLS before anything.
			if el.Name != (stream.Name{Space: NSTLS, Local: "starttls"}) {
				c.fail(stream.PolicyViolation, "STARTTLS is required")
				return false, false
			}
			if !c.write(stream.NewElement(NSTLS, "proceed")) || !c.startTLS() {
				return false, false
			}
			return true, true
		}
		switch el.Name.Space {
		case NSSASL:
			restart, ok := c.handleSASL(el)
			if !ok || restart {
				return restart, ok
			}
		case NSDialback:
			if !c.handleDialback(el) {
				return false, false
			}
		case stream.NSServer:
			if !c.handleStanza(el) {
				return false, false
			}
		default:
			c.fail(stream.UnsupportedStanzaType, "")
			return false, false
		}
	}
}

// features offers STARTTLS alone before TLS; after it, SASL EXTERNAL if
// the peer presented a certificate, and dialback if we would accept it.
func (c *inbound) features() *stream.Element {
	f := stream.NewElement(stream.NSStream, "features")
	switch {
	case c.tls == nil:
		f.AddChild(stream.NewElement(NSTLS, "starttls").AddChild(stream.NewElement(NSTLS, "required")))
	case !c.sasl:
		if len(c.tls.ConnectionState().PeerCertificates) > 0 {
			f.AddChild(stream.NewElement(NSSASL, "mechanisms").
				AddChild(stream.NewElement(NSSASL, "mechanism").AddText("EXTERNAL")))
		}
		if c.s.cfg.AllowDialback || (c.from != "" && c.certValidFor(c.from)) {
			f.AddChild(stream.NewElement(NSDialbackFeature, "dialback").AddChild(stream.NewElement(NSDialbackFeature, "errors")))
		}
	}
	return f
}

func (c *inbound) certValidFor(domain string) bool {
	return verifyPeer(c.tls.ConnectionState().PeerCertificates, domain, c.s.cfg.RootCAs, time.Now()) == nil
}

func (c *inbound) startTLS() bool {
	tc := tls.Server(c.raw, c.s.tlsServer(c.direct))
	_ = c.raw.SetDeadline(time.Now().Add(c.s.cfg.ConnectTimeout))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.log.WithError(err).Debug("s2s: TLS handshake")
		return false
	}
	_ = c.raw.SetWriteDeadline(time.Time{})
	if err := c.r.Reset(tc); err != nil {
		c.log.WithError(err).Info("s2s: data after STARTTLS")
		return false
	}
	c.wmu.Lock()
	c.w.Reset(tc)
	c.wmu.Unlock()
	c.conn, c.tls = tc, tc
	return true
}

// handleSASL runs SASL EXTERNAL (RFC 6120 §6, XEP-0178): the peer's
// certificate must be valid for the domain it claims.
func (c *inbound) handleSASL(el *stream.Element) (restart, ok bool) {
	if c.sasl || el.Name.Local != "auth" {
		if el.Name.Local == "abort" {
			return false, c.saslFailure("aborted")
		}
		c.fail(stream.PolicyViolation, "unexpected SASL element")
		return false, false
	}
	if el.Attr("mechanism") != "EXTERNAL" {
		return false, c.saslFailure("invalid-mechanism")
	}
	domain := c.from
	if t := strings.TrimSpace(el.Text()); t != "" && t != "=" {
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return false, c.saslFailure("incorrect-encoding")
		}
		az, err := jid.Parse(string(b))
		if err != nil || az.Localpart() != "" || az.Resourcepart() != "" {
			return false, c.saslFailure("invalid-authzid")
		}
		domain = az.Domainpart()
		if c.from != "" && !strings.EqualFold(domain, c.from) {
			return false, c.saslFailure("invalid-authzid")
		}
	}
	if domain == "" {
		return false, c.saslFailure("invalid-authzid")
	}
	if err := verifyPeer(c.tls.ConnectionState().PeerCertificates, domain, c.s.cfg.RootCAs, time.Now()); err != nil {
		c.log.WithError(err).Info("s2s: SASL EXTERNAL refused")
		return false, c.saslFailure("not-authorized")
	}
	if !c.write(stream.NewElement(NSSASL, "success")) {
		return false, false
	}
	c.authenticate(domain)
	c.sasl = true
	c.log.WithField("method", "EXTERNAL").Info("s2s: peer authenticated")
	c.r.Restart()
	c.wmu.Lock()
	c.w.Restart()
	c.wmu.Unlock()
	return true, true
}

func (c *inbound) saslFailure(cond string) bool {
	if !c.write(stream.NewElement(NSSASL, "failure").AddChild(stream.NewElement(NSSASL, cond))) {
		return false
	}
	if c.failures++; c.failures >= maxSASLFailures {
		c.fail(stream.PolicyViolation, "too many failed authentication attempts")
		return false
	}
	return true
}

func (c *inbound) authenticate(domain string) {
	c.amu.Lock()
	c.authed[strings.ToLower(domain)] = true
	c.amu.Unlock()
}

func (c *inbound) authenticated(domain string) bool {
	c.amu.Lock()
	defer c.amu.Unlock()
	return c.authed[strings.ToLower(domain)]
}

// handleDialback serves both dialback requests a peer makes of us:
// db:result (it wants to send as a domain: we are the receiving server)
// and db:verify (it checks a key we issued: we are the authoritative
// server).
func (c *inbound) handleDialback(el *stream.Element) bool {
	from, to := el.Attr("from"), el.Attr("to")
	fj, err := jid.Parse(from)
	if err != nil || from == "" || fj.Localpart() != "" || fj.Resourcepart() != "" {
		c.fail(stream.InvalidFrom, "")
		return false
	}
	if !strings.EqualFold(to, c.s.cfg.Domain) {
		c.fail(stream.HostUnknown, "")
		return false
	}
	from = fj.Domainpart()
	switch el.Name.Local {
	case "verify":
		valid := checkDialbackKey(c.s.cfg.DialbackSecret, from, c.s.cfg.Domain, el.Attr("id"), el.Text())
		typ := "invalid"
		if valid {
			typ = "valid"
		}
		return c.writeRaw(dbElement("verify", c.s.cfg.Domain, from, el.Attr("id"), typ, ""))
	case "result":
		if el.Attr("type") != "" {
			return true // an answer; we ask nothing on inbound streams
		}
	default:
		c.fail(stream.UnsupportedStanzaType, "")
		return false
	}
	if c.certValidFor(from) {
		// XEP-0344 §2.4: the certificate already proves the domain.
		c.authenticate(from)
		c.log.WithField("method", "dialback+certificate").Info("s2s: peer authenticated")
		return c.writeRaw(dbElement("result", c.s.cfg.Domain, from, "", "valid", ""))
	}
	if !c.s.cfg.AllowDialback {
		c.log.WithField("claimed", from).Info("s2s: dialback refused: certificate not valid and dialback not allowed")
		return c.writeRaw(dbElement("result", c.s.cfg.Domain, from, "", "invalid", ""))
	}
	if c.inFlight.Load() >= maxPendingDialback {
		c.log.Warn("s2s: too many dialback checks in flight on one stream")
		c.fail(stream.PolicyViolation, "too many dialback requests in flight")
		return false
	}
	key, id := el.Text(), c.id
	c.pending.Add(1)
	c.inFlight.Add(1)
	go func() {
		defer c.pending.Done()
		defer c.inFlight.Add(-1)
		ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.ConnectTimeout)
		defer cancel()
		valid, err := c.s.verifyDialback(ctx, from, key, id)
		if err != nil {
			c.log.WithError(err).Info("s2s: dialback check failed")
		}
		typ := "invalid"
		if valid {
			typ = "valid"
			c.authenticate(from)
			c.log.WithField("method", "dialback").Info("s2s: peer authenticated")
		}
		c.writeRaw(dbElement("result", c.s.cfg.Domain, from, "", typ, ""))
	}()
	return true
}

// handleStanza checks the addressing of a stanza against what the peer
// proved and hands it to the router.
func (c *inbound) handleStanza(el *stream.Element) bool {
	switch el.Name.Local {
	case "message", "presence", "iq":
	default:
		c.fail(stream.UnsupportedStanzaType, "")
		return false
	}
	from, err := jid.Parse(el.Attr("from"))
	if err != nil || el.Attr("from") == "" {
		c.fail(stream.ImproperAddressing, "a stanza between servers needs a valid 'from'")
		return false
	}
	to, err := jid.Parse(el.Attr("to"))
	if err != nil || el.Attr("to") == "" {
		c.fail(stream.ImproperAddressing, "a stanza between servers needs a valid 'to'")
		return false
	}
	if !c.authenticated(from.Domainpart()) {
		c.log.WithField("from", from.Domainpart()).Warn("s2s: stanza from a domain the peer did not authenticate")
		c.fail(stream.InvalidFrom, "")
		return false
	}
	if !strings.EqualFold(to.Domainpart(), c.s.cfg.Domain) {
		c.fail(stream.HostUnknown, "")
		return false
	}
	toClient(el)
	if err := c.s.cfg.Router.FromPeer(c.ctx, el); err != nil {
		c.log.WithError(err).Debug("s2s: stanza from peer not routed")
	}
	return true
}

// toClient requalifies a stanza read in jabber:server, and the children
// that share its namespace, as jabber:client: the router and every
// feature see stanzas from peers exactly as those from local clients.
func toClient(e *stream.Element) {
	if e.Name.Space != stream.NSServer {
		return
	}
	e.Name.Space = stream.NSClient
	for ch := range e.Children() {
		toClient(ch)
	}
}

func (c *inbound) extendDeadline() {
	_ = c.raw.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	if c.killed.Load() {
		_ = c.raw.SetReadDeadline(time.Now())
	}
}

func (c *inbound) readFailed(err error) bool {
	if c.killed.Load() {
		return false
	}
	if errors.Is(err, stream.ErrStreamClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.fail(stream.ConnectionTimeout, "")
		return false
	}
	if se, ok := stream.StreamErrorFor(err); ok {
		c.log.WithError(err).Debug("s2s: bad input")
		c.fail(se.Condition, "")
	}
	return false
}

// fail sends a stream error from the reader goroutine.
func (c *inbound) fail(cond stream.Condition, text string) {
	c.killed.Store(true)
	c.writeError(cond, text)
}

// kill ends the stream from another goroutine.
func (c *inbound) kill(cond stream.Condition) {
	if !c.killed.CompareAndSwap(false, true) {
		return
	}
	c.writeError(cond, "")
	_ = c.raw.SetReadDeadline(time.Now())
}

func (c *inbound) writeError(cond stream.Condition, text string) {
	c.writeLocked(func(w *stream.Writer) error {
		if c.wclosed {
			return nil
		}
		c.wclosed = true
		return w.WriteError(stream.StreamError{Condition: cond, Text: text, Lang: "en"})
	})
}

func (c *inbound) writeLocked(f func(w *stream.Writer) error) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.raw.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	if err := f(c.w); err != nil {
		c.log.WithError(err).Debug("s2s: write")
		c.killed.Store(true)
		_ = c.raw.SetReadDeadline(time.Now())
		return false
	}
	return true
}

func (c *inbound) write(el *stream.Element) bool {
	return c.writeLocked(func(w *stream.Writer) error {
		if c.wclosed {
			return errors.New("stream closed")
		}
		return w.WriteElement(el)
	})
}

// writeRaw writes a dialback element with its db: prefix. The Writer
// issues one Write per call and buffers nothing, so writing beside it
// under the same lock keeps elements whole.
func (c *inbound) writeRaw(b []byte) bool {
	return c.writeLocked(func(*stream.Writer) error {
		if c.wclosed {
			return errors.New("stream closed")
		}
		_, err := c.conn.Write(b)
		return err
	})
}
