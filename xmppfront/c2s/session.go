package c2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/sasl"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces of stream negotiation.
const (
	NSTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession  = "urn:ietf:params:xml:ns:xmpp-session"
	NSRegister = "jabber:iq:register"
	// NSSASLChannelBinding is XEP-0440's channel-binding capability.
	NSSASLChannelBinding = "urn:xmpp:sasl-cb:0"
	// NSRegisterFeature is XEP-0077's stream feature.
	NSRegisterFeature = "http://jabber.org/features/iq-register"
)

// stage is how far negotiation has got.
type stage int

const (
	stageTLS   stage = iota // STARTTLS required next
	stageAuth               // SASL next
	stageBind               // resource binding next
	stageReady              // bound: stanzas flow
)

// maxSASLFailures ends a connection that keeps failing to authenticate
// (RFC 6120 §6.4.5 asks for a limit between 2 and 5 retries).
const maxSASLFailures = 5

// cutGrace is how long a client that does not read gets to take the last
// bytes written to it once it is cut off (see session.cutOff).
const cutGrace = 100 * time.Millisecond

// drainTime bounds how long a closing session reads what the peer still
// sends: closing a socket with unread input makes the kernel send a reset,
// which can destroy the stream error before the peer reads it.
const drainTime = 500 * time.Millisecond

// session is one client connection, from accept to close.
type session struct {
	srv    *Server
	id     string
	addr   string
	direct bool
	log    *logrus.Entry

	raw  net.Conn // the TCP connection, for deadlines and the final close
	conn net.Conn // raw or the TLS connection over it
	tls  *tls.Conn
	leaf *tls.Certificate // certificate served, for tls-server-end-point

	r     *stream.Reader
	stage stage

	wmu     sync.Mutex // guards w and wclosed
	w       *stream.Writer
	wclosed bool

	killed atomic.Bool
	// killMu guards killDone, which kill sets together with the killed
	// flag and closes once its stream error is written, so that finish
	// can wait for it. (A WaitGroup here raced: kill's Add could run
	// while finish was already in Wait.)
	killMu   sync.Mutex
	killDone chan struct{}
	cut      atomic.Bool // cut off for not reading: writes get cutGrace

	ctx    context.Context
	cancel context.CancelFunc

	// SASL state.
	auth     *sasl.Server
	bindings []sasl.ChannelBinding
	attempt  string // username of the SASL attempt in progress
	failures int
	user     jid.JID // bare, once authenticated
	full     jid.JID // once bound
	bound    atomic.Bool
	// loginBy ends a connection that has not bound a resource by then.
	loginBy time.Time

	// Queues of a bound session; qmu guards qclosed against Send/Do
	// racing with the close.
	qmu     sync.RWMutex
	qclosed bool
	out     *lane[*stream.Element]       // to the client, in order
	work    *lane[func(context.Context)] // server-side work, in order
}

func newSession(ctx context.Context, srv *Server, conn net.Conn, addr string, direct bool) *session {
	c := &session{
		srv:    srv,
		id:     randomID(8),
		addr:   addr,
		direct: direct,
		raw:    conn,
		conn:   conn,
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.log = srv.cfg.Log.WithFields(logrus.Fields{"session": c.id, "addr": addr})
	c.loginBy = time.Now().Add(srv.cfg.LoginTimeout)
	return c
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ID implements router.Session.
func (c *session) ID() string { return c.id }

// JID implements router.Session.
func (c *session) JID() jid.JID { return c.full }

// run serves the connection until it ends.
func (c *session) run() {
	defer c.srv.release(c)
	graceful := c.serve()
	c.finish(graceful)
}

// serve runs negotiation and then the stanza loop. It reports whether the
// stream ended cleanly (the peer closed it), as opposed to by an error.
func (c *session) serve() bool {
	c.r = stream.NewReader(c.conn, c.srv.cfg.Limits)
	c.r.SetKeepaliveHook(func(int) { c.extendDeadline() })
	c.w = stream.NewWriter(c.conn)
	if c.direct {
		if !c.startTLS() {
			return false
		}
	}
	for {
		restart, graceful := c.stream()
		if !restart {
			return graceful
		}
	}
}

// stream serves one stream, from the header to a restart (after STARTTLS
// or SASL) or the end.
func (c *session) stream() (restart, graceful bool) {
	c.extendDeadline()
	h, err := c.r.ReadHeader()
	if err != nil {
		return false, c.readFailed(err)
	}
	hdr := stream.Header{From: c.srv.cfg.Domain, ID: randomID(12), Version: "1.0", Lang: "en"}
	if h.From != "" {
		if f, err := jid.Parse(h.From); err == nil {
			hdr.To = f.String()
		}
	}
	if err := c.writeLocked(func(w *stream.Writer) error { return w.WriteHeader(hdr) }); err != nil {
		return false, false
	}
	if h.Namespace != stream.NSClient {
		c.fail(stream.InvalidNamespace, "this port serves jabber:client")
		return false, false
	}
	if to, err := jid.Parse(h.To); err != nil || h.To == "" || to.Domainpart() != c.srv.cfg.Domain || to.Localpart() != "" || to.Resourcepart() != "" {
		c.fail(stream.HostUnknown, "")
		return false, false
	}
	if !c.write(c.features()) {
		return false, false
	}
	for {
		el, err := c.next()
		if err != nil {
			return false, c.readFailed(err)
		}
		var ok bool
		switch c.stage {
		case stageTLS:
			restart, ok = c.handleTLSStage(el)
		case stageAuth:
			restart, ok = c.handleAuthStage(el)
		case stageBind:
			ok = c.handleBindStage(el)
		default:
			ok = c.handleStanza(el)
		}
		if !ok {
			return false, false
		}
		if restart {
			return true, false
		}
	}
}

// features lists what the client may negotiate next (RFC 6120 §4.3.2).
func (c *session) features() *stream.Element {
	f := stream.NewElement(stream.NSStream, "features")
	switch c.stage {
	case stageTLS:
		f.AddChild(stream.NewElement(NSTLS, "starttls").AddChild(stream.NewElement(NSTLS, "required")))
	case stageAuth:
		m := stream.NewElement(NSSASL, "mechanisms")
		for _, name := range sasl.Mechanisms(true, c.bindings) {
			m.AddChild(stream.NewElement(NSSASL, "mechanism").AddText(name))
		}
		f.AddChild(m)
		if len(c.bindings) > 0 {
			// XEP-0440: say which channel bindings -PLUS accepts, so
			// that clients need not guess (and fail with tls-unique).
			cb := stream.NewElement(NSSASLChannelBinding, "sasl-channel-binding")
			for _, b := range c.bindings {
				cb.AddChild(stream.NewElement(NSSASLChannelBinding, "channel-binding", "type", b.Type))
			}
			f.AddChild(cb)
		}
		if c.srv.cfg.Register != nil {
			f.AddChild(stream.NewElement(NSRegisterFeature, "register"))
		}
	case stageBind:
		f.AddChild(stream.NewElement(NSBind, "bind"))
		f.AddChild(stream.NewElement(NSSession, "session").AddChild(stream.NewElement(NSSession, "optional")))
		if c.srv.cfg.Features != nil {
			for _, e := range c.srv.cfg.Features() {
				f.AddChild(e)
			}
		}
	}
	return f
}

// handleTLSStage accepts <starttls/> and nothing else.
func (c *session) handleTLSStage(el *stream.Element) (restart, ok bool) {
	switch {
	case el.Name == stream.Name{Space: NSTLS, Local: "starttls"}:
		if !c.write(stream.NewElement(NSTLS, "proceed")) {
			return false, false
		}
		if !c.startTLS() {
			return false, false
		}
		return true, true
	case el.Name == stream.Name{Space: NSSASL, Local: "auth"}:
		return false, c.write(saslFailure(sasl.EncryptionRequired))
	case isStanza(el):
		c.fail(stream.NotAuthorized, "STARTTLS is required")
		return false, false
	default:
		c.fail(stream.UnsupportedStanzaType, "")
		return false, false
	}
}

// startTLS runs the server side of the TLS handshake on the raw
// connection and switches the stream to it.
func (c *session) startTLS() bool {
	tc := tls.Server(c.raw, c.tlsConfig())
	_ = c.raw.SetDeadline(time.Now().Add(c.srv.cfg.IdleTimeout))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.log.WithError(err).Debug("c2s: TLS handshake")
		return false
	}
	_ = c.raw.SetWriteDeadline(time.Time{})
	if err := c.r.Reset(tc); err != nil {
		// Plaintext sent after <starttls/>: refuse rather than treat it
		// as protected (the STARTTLS injection attack).
		c.log.WithError(err).Info("c2s: data after STARTTLS")
		return false
	}
	c.wmu.Lock()
	c.w.Reset(tc)
	c.wmu.Unlock()
	c.conn, c.tls = tc, tc
	var leaf = c.leafCert()
	c.bindings = sasl.ChannelBindings(tc.ConnectionState(), leaf)
	c.stage = stageAuth
	return true
}

// next reads the next element with the idle timer running.
func (c *session) next() (*stream.Element, error) {
	c.extendDeadline()
	return c.r.Next()
}

// extendDeadline pushes the idle timer back; a killed session keeps its
// deadline in the past so the reader wakes up.
func (c *session) extendDeadline() {
	d := time.Now().Add(c.srv.cfg.IdleTimeout)
	if !c.bound.Load() && c.loginBy.Before(d) {
		d = c.loginBy
	}
	_ = c.raw.SetReadDeadline(d)
	if c.killed.Load() {
		_ = c.raw.SetReadDeadline(time.Now())
	}
}

// readFailed ends the stream after a read error, with the stream error the
// error calls for. It reports whether the peer closed its stream.
func (c *session) readFailed(err error) bool {
	if c.killed.Load() {
		return false // kill has sent the stream error
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
		c.log.WithError(err).Debug("c2s: bad input")
		c.fail(se.Condition, "")
		return false
	}
	return false // EOF or a broken connection: nobody to tell
}

// fail sends a stream error and marks the session as ending. It is for
// the reader goroutine; other goroutines use kill.
func (c *session) fail(cond stream.Condition, text string) {
	c.killed.Store(true)
	c.writeError(cond, text)
}

// kill ends the session from another goroutine (shutdown, replacement, an
// overflowing queue) without blocking the caller: the stream error is
// written and the reader woken in the background.
func (c *session) kill(cond stream.Condition, text string) {
	// The flag and the channel change together: finish, which may see
	// the flag at once, must wait for the error to be written before
	// closing.
	c.killMu.Lock()
	if !c.killed.CompareAndSwap(false, true) {
		c.killMu.Unlock()
		return
	}
	done := make(chan struct{})
	c.killDone = done
	c.killMu.Unlock()
	go func() {
		defer close(done)
		c.writeError(cond, text)
		_ = c.raw.SetReadDeadline(time.Now())
	}()
}

// cutOff ends the session of a client that does not read what it is
// sent. Its writer is then most likely blocked in a write the client will
// never take, holding the lock the stream error needs; waiting out the
// write timeout would keep the session, its full queue and its socket
// buffers for that long. So the blocked write, and the stream error after
// it, get cutGrace instead.
func (c *session) cutOff() {
	c.cut.Store(true)
	c.kill(stream.PolicyViolation, "too slow to read")
	_ = c.raw.SetWriteDeadline(time.Now().Add(cutGrace))
}

func (c *session) writeError(cond stream.Condition, text string) {
	_ = c.writeLocked(func(w *stream.Writer) error {
		if c.wclosed {
			return nil
		}
		c.wclosed = true
		return w.WriteError(stream.StreamError{Condition: cond, Text: text, Lang: "en"})
	})
}

// writeLocked runs f on the writer with the write deadline set.
func (c *session) writeLocked(f func(w *stream.Writer) error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.raw.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	if c.cut.Load() {
		// Checked after setting the deadline: cutOff sets the flag
		// before its own deadline, so one of the two shortens this write.
		_ = c.raw.SetWriteDeadline(time.Now().Add(cutGrace))
	}
	err := f(c.w)
	if err != nil {
		c.log.WithError(err).Debug("c2s: write")
		c.killed.Store(true)
		_ = c.raw.SetReadDeadline(time.Now())
	}
	return err
}

// write writes one element at once; it is for negotiation, before the
// writer goroutine exists.
func (c *session) write(el *stream.Element) bool {
	err := c.writeLocked(func(w *stream.Writer) error {
		if c.wclosed {
			return errors.New("stream closed")
		}
		return w.WriteElement(el)
	})
	return err == nil
}

// finish tears the session down: queues, router, presence, connection.
func (c *session) finish(graceful bool) {
	if !graceful {
		c.cancel() // abort handlers still running for a dead session
	}
	if c.bound.Load() {
		c.qmu.Lock()
		c.qclosed = true
		c.qmu.Unlock()
		// What is queued still runs (a graceful end lets it); the
		// worker's sends are refused from here on.
		c.work.wait()
		c.out.wait()
		// Unavailable presence goes out on behalf of the session even
		// when it died; give it a context of its own.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 10*time.Second)
		c.srv.cfg.Router.Ended(ctx, c)
		cancel()
	}
	if c.user.Localpart() != "" && c.srv.cfg.OnSessionEnd != nil {
		// Pairs with OnAuthenticated: once per authenticated stream.
		c.srv.cfg.OnSessionEnd(context.WithoutCancel(c.ctx), c.user)
	}
	c.cancel()
	c.killMu.Lock()
	done := c.killDone
	c.killMu.Unlock()
	if done != nil {
		<-done
	}
	if graceful {
		_ = c.writeLocked(func(w *stream.Writer) error {
			if c.wclosed {
				return nil
			}
			c.wclosed = true
			return w.Close()
		})
	}
	c.close()
}

// close half-closes the connection, reads what the peer still sends for a
// moment so the kernel does not reset the connection under the last
// writes, and closes it.
func (c *session) close() {
	if c.tls != nil {
		_ = c.raw.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_ = c.tls.CloseWrite()
	}
	if tcp, ok := c.raw.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
	}
	_ = c.raw.SetReadDeadline(time.Now().Add(drainTime))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.raw, 1<<20))
	_ = c.raw.Close()
}

func isStanza(el *stream.Element) bool {
	if el.Name.Space != stream.NSClient {
		return false
	}
	switch el.Name.Local {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// iqError answers an IQ directly on the stream (negotiation stages).
func (c *session) iqError(el *stream.Element, e *stanza.Error) bool {
	return c.write(stanza.ErrorReply(el, e))
}
