package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"verlauf.im/verlauf/xmppfront/stream"
)

// Errors of setting up an outbound stream; a stanza waiting for it
// bounces with remote-server-timeout for ErrTimeout and
// remote-server-not-found for the others.
var (
	ErrNoTLS        = errors.New("s2s: peer does not offer TLS")
	ErrUnreachable  = errors.New("s2s: no address of the peer answered")
	ErrNotAccepted  = errors.New("s2s: peer did not accept our authentication")
	ErrPeerProtocol = errors.New("s2s: peer broke the protocol")
	ErrTimeout      = errors.New("s2s: timed out")
)

// peerConn is our client side of a stream to a remote server, after TLS.
type peerConn struct {
	s        *Server
	domain   string
	raw      net.Conn
	tls      *tls.Conn
	r        *stream.Reader
	w        *stream.Writer
	id       string          // the stream id the peer gave its last header
	features *stream.Element // the features it offered last
	verified bool            // its certificate is valid for domain
	method   string          // how we proved our domain: EXTERNAL or dialback
}

// dial connects to domain's server and negotiates TLS, trying each
// resolved target in turn. The peer's certificate must be valid for
// domain unless dialback is allowed. The connection's deadline is ctx's.
func (s *Server) dial(ctx context.Context, domain string) (*peerConn, error) {
	targets, err := resolve(ctx, s.cfg.Resolver, s.cfg.Routes, domain)
	if err != nil {
		return nil, fmt.Errorf("%w: resolving %s: %w", ErrUnreachable, domain, err)
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: %s offers no XMPP server", ErrUnreachable, domain)
	}
	var errs []error
	for _, t := range targets {
		pc, err := s.dialTarget(ctx, domain, t)
		if err == nil {
			return pc, nil
		}
		errs = append(errs, err)
		if errors.Is(err, ErrCertificate) || ctx.Err() != nil {
			break // another address of the same domain has the same certificate
		}
	}
	err = errors.Join(errs...)
	if ctx.Err() != nil && !errors.Is(err, ErrTimeout) {
		err = fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return nil, err
}

func (s *Server) dialTarget(ctx context.Context, domain string, t target) (*peerConn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTimeout, t.addr, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, t.addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Now()) })
	defer stop()
	pc := &peerConn{s: s, domain: domain, raw: raw}
	pc.r = stream.NewReader(raw, s.cfg.Limits)
	pc.w = stream.NewWriter(raw)
	if !t.direct {
		if err := pc.open(); err != nil {
			_ = raw.Close()
			return nil, pc.wrap(err)
		}
		if pc.features.Child("starttls", NSTLS) == nil {
			_ = pc.w.WriteError(stream.StreamError{Condition: stream.PolicyViolation, Text: "TLS is required"})
			_ = raw.Close()
			return nil, fmt.Errorf("%w: %s", ErrNoTLS, t.addr)
		}
		if err := pc.w.WriteElement(stream.NewElement(NSTLS, "starttls")); err != nil {
			_ = raw.Close()
			return nil, pc.wrap(err)
		}
		el, err := pc.r.Next()
		if err != nil || el.Name != (stream.Name{Space: NSTLS, Local: "proceed"}) {
			_ = raw.Close()
			if err == nil {
				err = fmt.Errorf("%w: STARTTLS answered with <%s/>", ErrNoTLS, el.Name.Local)
			}
			return nil, pc.wrap(err)
		}
	}
	tc := tls.Client(raw, s.tlsClient(domain, t.direct))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, pc.wrap(fmt.Errorf("%w: TLS handshake with %s: %w", ErrUnreachable, t.addr, err))
	}
	pc.tls = tc
	cerr := verifyPeer(tc.ConnectionState().PeerCertificates, domain, s.cfg.RootCAs, time.Now())
	pc.verified = cerr == nil
	if cerr != nil && !s.cfg.AllowDialback {
		_ = tc.Close()
		return nil, cerr
	}
	if err := pc.r.Reset(tc); err != nil {
		_ = raw.Close()
		return nil, pc.wrap(err)
	}
	pc.w.Reset(tc)
	if err := pc.open(); err != nil {
		_ = raw.Close()
		return nil, pc.wrap(err)
	}
	return pc, nil
}

// wrap classifies an I/O error of the setup.
func (pc *peerConn) wrap(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	if errors.Is(err, ErrNoTLS) || errors.Is(err, ErrUnreachable) || errors.Is(err, ErrPeerProtocol) || errors.Is(err, ErrNotAccepted) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrPeerProtocol, err)
}

// open sends our stream header and reads the peer's header and features.
func (pc *peerConn) open() error {
	if err := pc.w.WriteHeader(stream.Header{
		From: pc.s.cfg.Domain, To: pc.domain, Version: "1.0",
		Namespace: stream.NSServer, Decls: map[string]string{"db": NSDialback},
	}); err != nil {
		return err
	}
	h, err := pc.r.ReadHeader()
	if err != nil {
		return err
	}
	if h.Namespace != stream.NSServer {
		return fmt.Errorf("%w: content namespace %q", ErrPeerProtocol, h.Namespace)
	}
	pc.id = h.ID
	el, err := pc.r.Next()
	if err != nil {
		return err
	}
	if se, ok := stream.ParseStreamError(el); ok {
		return fmt.Errorf("%w: %w", ErrNotAccepted, se)
	}
	if el.Name != (stream.Name{Space: stream.NSStream, Local: "features"}) {
		return fmt.Errorf("%w: <%s/> instead of stream features", ErrPeerProtocol, el.Name.Local)
	}
	pc.features = el
	return nil
}

// writeRaw writes bytes we serialise ourselves: the dialback elements,
// which peers expect with the db: prefix their parsers look for.
func (pc *peerConn) writeRaw(b []byte) error {
	_, err := pc.tls.Write(b)
	return err
}

// authenticate proves our domain to the peer: SASL EXTERNAL with our
// certificate when offered, else (or when it fails) dialback.
func (pc *peerConn) authenticate() error {
	if m := pc.features.Child("mechanisms", NSSASL); m != nil && offers(m, "EXTERNAL") {
		ok, err := pc.external()
		if err != nil {
			return err
		}
		if ok {
			pc.method = "EXTERNAL"
			return nil
		}
	}
	if pc.features.Child("dialback", NSDialbackFeature) == nil {
		return fmt.Errorf("%w: neither SASL EXTERNAL nor dialback succeeded with %s", ErrNotAccepted, pc.domain)
	}
	if err := pc.dialback(); err != nil {
		return err
	}
	pc.method = "dialback"
	return nil
}

func offers(mechs *stream.Element, name string) bool {
	for m := range mechs.Children() {
		if strings.EqualFold(strings.TrimSpace(m.Text()), name) {
			return true
		}
	}
	return false
}

// external runs SASL EXTERNAL (XEP-0178) with our domain as authzid.
func (pc *peerConn) external() (bool, error) {
	auth := stream.NewElement(NSSASL, "auth", "mechanism", "EXTERNAL").
		AddText(base64.StdEncoding.EncodeToString([]byte(pc.s.cfg.Domain)))
	if err := pc.w.WriteElement(auth); err != nil {
		return false, err
	}
	el, err := pc.r.Next()
	if err != nil {
		return false, err
	}
	switch el.Name {
	case stream.Name{Space: NSSASL, Local: "success"}:
		pc.r.Restart()
		pc.w.Restart()
		return true, pc.open()
	case stream.Name{Space: NSSASL, Local: "failure"}:
		return false, nil
	}
	return false, fmt.Errorf("%w: <%s/> in answer to SASL", ErrPeerProtocol, el.Name.Local)
}

// dialback runs the initiating side of XEP-0220: our key for this
// stream, which the peer checks with our authoritative side (our
// listener) before it says valid.
func (pc *peerConn) dialback() error {
	key := dialbackKey(pc.s.cfg.DialbackSecret, pc.domain, pc.s.cfg.Domain, pc.id)
	if err := pc.writeRaw(dbElement("result", pc.s.cfg.Domain, pc.domain, "", "", key)); err != nil {
		return err
	}
	for {
		el, err := pc.r.Next()
		if err != nil {
			return err
		}
		if se, ok := stream.ParseStreamError(el); ok {
			return fmt.Errorf("%w: %w", ErrNotAccepted, se)
		}
		if el.Name != (stream.Name{Space: NSDialback, Local: "result"}) {
			continue
		}
		if el.Attr("type") == "valid" {
			return nil
		}
		return fmt.Errorf("%w: dialback answered %q", ErrNotAccepted, el.Attr("type"))
	}
}

// close ends the stream politely and closes the connection.
func (pc *peerConn) close() {
	_ = pc.raw.SetWriteDeadline(time.Now().Add(time.Second))
	_ = pc.w.Close()
	if pc.tls != nil {
		_ = pc.tls.CloseWrite()
	}
	_ = pc.raw.Close()
}

// dbElement serialises a dialback element with the db: prefix; the
// header of every stream we write declares it.
func dbElement(local, from, to, id, typ, key string) []byte {
	el := stream.NewElement("", "db:"+local, "from", from, "to", to)
	if id != "" {
		el.SetAttr("id", id)
	}
	if typ != "" {
		el.SetAttr("type", typ)
	}
	el.AddText(key)
	return el.Append(nil, "")
}

// verifyDialback is the receiving server's check of XEP-0220 §2.3: ask
// the authoritative server of originating whether key is the one it
// issued for our stream streamID, on a connection of its own over TLS.
func (s *Server) verifyDialback(ctx context.Context, originating, key, streamID string) (bool, error) {
	pc, err := s.dial(ctx, originating)
	if err != nil {
		return false, err
	}
	defer pc.close()
	stop := context.AfterFunc(ctx, func() { _ = pc.raw.SetDeadline(time.Now()) })
	defer stop()
	if err := pc.writeRaw(dbElement("verify", s.cfg.Domain, originating, streamID, "", key)); err != nil {
		return false, err
	}
	for {
		el, err := pc.r.Next()
		if err != nil {
			return false, err
		}
		if se, ok := stream.ParseStreamError(el); ok {
			return false, se
		}
		if el.Name == (stream.Name{Space: NSDialback, Local: "verify"}) && el.Attr("id") == streamID {
			return el.Attr("type") == "valid", nil
		}
	}
}
