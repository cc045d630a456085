// Package s2s serves server-to-server streams (RFC 6120): federation with
// other XMPP servers, always over TLS.
//
// Inbound, a peer connects to the STARTTLS port (5269) or the direct TLS
// port (XEP-0368, ALPN xmpp-server). Anything but <starttls/> before TLS
// ends the stream with policy-violation: no stanza, no dialback, no SASL
// ever crosses in plaintext, and no setting changes that. The peer then
// authenticates its domain with SASL EXTERNAL (its certificate checked as
// RFC 6125 and XEP-0178 say) or, where Config.AllowDialback permits it,
// with Server Dialback (XEP-0220) over that TLS. A stanza whose 'from'
// domain was not authenticated on the stream ends it with invalid-from; one
// not addressed to the local domain with host-unknown. Stanzas go to the
// router's FromPeer in the order they were read, on the stream's own
// goroutine: a slow store slows that peer down (TCP backpressure) and
// nobody else.
//
// Outbound, SendRemote queues a stanza on the one stream per remote
// domain, set up on first use: resolve (static route, then SRV
// _xmpps-server/_xmpp-server, then the domain on 5269), TLS first, then
// SASL EXTERNAL with our certificate or dialback. Stanzas wait in order
// while the stream is set up; if it cannot be, they bounce with
// remote-server-not-found (or remote-server-timeout for a timeout). An
// outbound stream idle for Config.IdleTimeout is closed.
//
// Lock order: Server.mu before outbound.mu; neither is held while writing
// to the network or calling the router.
package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/listen"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces of server-to-server negotiation.
const (
	NSTLS             = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL            = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSDialback        = "jabber:server:dialback"
	NSDialbackFeature = "urn:xmpp:features:dialback"
)

// ALPN is the protocol name of server streams on direct TLS (XEP-0368).
const ALPN = "xmpp-server"

// DefaultPort is the s2s port of RFC 6120 §14.7.
const DefaultPort = "5269"

// Router is what s2s needs of the router: routing what peers send, and
// sending bounces for what could not be delivered to them.
type Router interface {
	// FromPeer routes a stanza that an authenticated peer sent (in
	// jabber:client form, 'from' checked against the stream).
	FromPeer(ctx context.Context, st *stream.Element) error
	// Route delivers a stanza the server emits (a bounce).
	Route(ctx context.Context, st *stream.Element)
}

// Resolver looks up SRV records; *net.Resolver is one.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// Config configures a Server. Domain, TLS and Router are required.
type Config struct {
	// Domain is the local XMPP domain.
	Domain string
	// TLS holds our certificate, served to peers and presented to them as
	// a client certificate for SASL EXTERNAL. TLS 1.2 is the minimum
	// whatever it says.
	TLS *tls.Config
	// Listen is the STARTTLS address (":5269"); "" for none.
	Listen string
	// ListenTLS is the direct TLS address (XEP-0368); "" for none.
	ListenTLS string
	// Routes maps remote domains to "host:port" (STARTTLS), overriding
	// DNS, for private deployments and tests.
	Routes map[string]string
	// RootCAs verify peer certificates. Nil means the system roots.
	RootCAs *x509.CertPool
	// AllowDialback lets a peer whose certificate cannot be verified for
	// its domain authenticate with Server Dialback over TLS, and lets us
	// federate with a peer whose certificate we cannot verify. Off by
	// default: only verified certificates are trusted.
	AllowDialback bool
	// DialbackSecret keys the dialback keys we issue (XEP-0185); it must
	// be shared by every node serving the domain. Random if empty.
	DialbackSecret []byte
	// IdleTimeout closes streams with no traffic. Default 10m.
	IdleTimeout time.Duration
	// ConnectTimeout bounds setting up an outbound stream (resolution,
	// connection, TLS, authentication). Default 30s.
	ConnectTimeout time.Duration
	// WriteTimeout bounds one write. Default 30s.
	WriteTimeout time.Duration
	// QueueLen bounds the stanzas waiting for one remote domain. Default
	// 1000; past it they bounce with resource-constraint.
	QueueLen int
	// Limits bound what a peer may send.
	Limits stream.Limits
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver
	// Router receives what peers send. Required.
	Router Router
	Log    *logrus.Entry
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Domain == "":
		return c, errors.New("s2s: Config.Domain is empty")
	case c.TLS == nil:
		return c, errors.New("s2s: Config.TLS is nil")
	case c.Router == nil:
		return c, errors.New("s2s: Config.Router is nil")
	}
	d, err := jid.Parse(c.Domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return c, errors.New("s2s: Config.Domain is not a domain")
	}
	c.Domain = d.Domainpart()
	if c.RootCAs == nil {
		if c.RootCAs, err = x509.SystemCertPool(); err != nil {
			return c, fmt.Errorf("s2s: system roots: %w", err)
		}
	}
	if len(c.DialbackSecret) == 0 {
		c.DialbackSecret = make([]byte, 32)
		if _, err := rand.Read(c.DialbackSecret); err != nil {
			return c, fmt.Errorf("s2s: dialback secret: %w", err)
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&c.IdleTimeout, 10*time.Minute)
	defDur(&c.ConnectTimeout, 30*time.Second)
	defDur(&c.WriteTimeout, 30*time.Second)
	if c.QueueLen <= 0 {
		c.QueueLen = 1000
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		c.Log = logrus.NewEntry(l)
	}
	routes := make(map[string]string, len(c.Routes))
	for d, a := range c.Routes {
		routes[strings.ToLower(d)] = a
	}
	c.Routes = routes
	return c, nil
}

// Server is the s2s service: listeners for peers and outbound streams to
// them. It implements router.S2S.
type Server struct {
	cfg    Config
	ctx    context.Context // ends at shutdown; every stream runs under it
	cancel context.CancelFunc

	mu      sync.Mutex
	listen  listen.Set
	out     map[string]*outbound // remote domain → its stream
	in      map[*inbound]struct{}
	closing bool
	wg      sync.WaitGroup
}

// New checks cfg and returns a server that is not listening yet. Outbound
// streams work as soon as it returns.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, out: make(map[string]*outbound), in: make(map[*inbound]struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Listen opens the configured listeners.
func (s *Server) Listen() error {
	if err := s.listen.Open(s.cfg.Listen, s.cfg.ListenTLS); err != nil {
		return fmt.Errorf("s2s: listen: %w", err)
	}
	return nil
}

// Addr returns the address of the STARTTLS listener (direct false) or the
// direct TLS one, nil if there is none.
func (s *Server) Addr(direct bool) net.Addr { return s.listen.Addr(direct) }

// Serve accepts peers until ctx ends, then closes every stream, inbound
// and outbound, and returns once they are gone. It calls Listen if that
// was not done; with no listener configured it only keeps outbound
// streams until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	n := len(s.listen.Listeners())
	if n == 0 && (s.cfg.Listen != "" || s.cfg.ListenTLS != "") {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	ls := s.listen.Listeners()
	var accepting sync.WaitGroup
	for _, l := range ls {
		accepting.Add(1)
		go func() {
			defer accepting.Done()
			s.accept(l)
		}()
	}
	<-ctx.Done()
	s.Close()
	accepting.Wait()
	return nil
}

// Close stops accepting, ends every stream with system-shutdown and waits
// for them; queued stanzas bounce.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closing = true
	ins := make([]*inbound, 0, len(s.in))
	for c := range s.in {
		ins = append(ins, c)
	}
	s.mu.Unlock()
	s.closeListeners()
	for _, c := range ins {
		c.kill(stream.SystemShutdown)
	}
	s.cancel()
	s.wg.Wait()
}

func (s *Server) closeListeners() { s.listen.Close() }

func (s *Server) accept(l listen.Listener) {
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
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.cfg.Log.WithError(err).Warn("s2s: accept")
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := newInbound(s, conn, l.Direct)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = conn.Close()
			continue
		}
		s.in[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.run()
			s.mu.Lock()
			delete(s.in, c)
			s.mu.Unlock()
		}()
	}
}

// SendRemote implements router.S2S: it queues st for its remote domain
// and returns at once. What cannot be delivered later bounces through the
// router.
func (s *Server) SendRemote(_ context.Context, st *stream.Element) error {
	to, err := jid.Parse(st.Attr("to"))
	if err != nil {
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
	}
	domain := to.Domainpart()
	if strings.EqualFold(domain, s.cfg.Domain) {
		return &stanza.Error{Type: stanza.Cancel, Condition: stanza.InternalServerError, Text: "local domain routed to s2s"}
	}
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return &stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, Text: "shutting down"}
		}
		o := s.out[domain]
		if o == nil {
			o = newOutbound(s, domain)
			s.out[domain] = o
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				o.run()
			}()
		}
		s.mu.Unlock()
		queued, full := o.enqueue(st)
		if full {
			return &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "too many stanzas waiting for " + domain}
		}
		if queued {
			return nil
		}
		// The stream was closing; retire it and start another.
		s.mu.Lock()
		if s.out[domain] == o {
			delete(s.out, domain)
		}
		s.mu.Unlock()
	}
}

// retire removes o from the outbound table if it is still there.
func (s *Server) retire(o *outbound) {
	s.mu.Lock()
	if s.out[o.domain] == o {
		delete(s.out, o.domain)
	}
	s.mu.Unlock()
}

// bounce answers st, which could not be delivered to a peer, with cond.
func (s *Server) bounce(st *stream.Element, cond stanza.Condition) {
	t := stanza.Cancel
	if cond == stanza.RemoteServerTimeout || cond == stanza.ResourceConstraint {
		t = stanza.Wait
	}
	switch st.Attr("type") {
	case "error", "result":
		return
	}
	if st.Name.Local == "presence" && st.Attr("type") != "subscribe" {
		return
	}
	if st.Attr("from") == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	s.cfg.Router.Route(ctx, stanza.ErrorReply(st, &stanza.Error{Type: t, Condition: cond}))
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tlsServer returns the TLS configuration of an inbound connection: TLS
// 1.2 at least, and a client certificate requested (not required) for
// SASL EXTERNAL; we verify it ourselves against the peer's domain, which
// crypto/tls does not know.
func (s *Server) tlsServer(direct bool) *tls.Config {
	cfg := s.cfg.TLS.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	cfg.ClientAuth = tls.RequestClientCert
	cfg.NextProtos = nil
	if direct {
		cfg.NextProtos = []string{ALPN}
	}
	return cfg
}

// tlsClient returns the TLS configuration of an outbound connection to
// domain. The certificate is verified by verifyPeer after the handshake,
// because RFC 6125's XMPP identities (XmppAddr, SRV-ID) are not something
// crypto/tls checks, and because dialback may stand in for an unverifiable
// certificate when allowed.
func (s *Server) tlsClient(domain string, direct bool) *tls.Config {
	base := s.cfg.TLS
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         domain,
		InsecureSkipVerify: true, //nolint:gosec // verified by verifyPeer after the handshake
		Certificates:       base.Certificates,
		GetCertificate:     nil,
	}
	if base.GetCertificate != nil && len(base.Certificates) == 0 {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return base.GetCertificate(&tls.ClientHelloInfo{ServerName: s.cfg.Domain})
		}
	}
	if direct {
		cfg.NextProtos = []string{ALPN}
	}
	return cfg
}
