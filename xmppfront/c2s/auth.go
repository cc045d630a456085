package c2s

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/sasl"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// handleAuthStage runs SASL (RFC 6120 §6) and, if configured, in-band
// registration before authentication.
func (c *session) handleAuthStage(el *stream.Element) (restart, ok bool) {
	if el.Name.Space == NSSASL {
		switch el.Name.Local {
		case "auth":
			return c.saslAuth(el)
		case "response":
			if c.auth == nil {
				return false, c.saslFail(sasl.MalformedRequest, false)
			}
			in, err := decodeSASL(el.Text())
			if err != nil {
				c.auth = nil
				return false, c.saslFail(sasl.IncorrectEncoding, false)
			}
			return c.saslStep(in)
		case "abort":
			c.auth = nil
			return false, c.saslFail(sasl.Aborted, false)
		}
	}
	if c.srv.cfg.Register != nil && el.Name == (stream.Name{Space: stream.NSClient, Local: "iq"}) {
		if p, err := stanza.Payload(el); err == nil && p.Name == (stream.Name{Space: NSRegister, Local: "query"}) {
			return false, c.register(el, p)
		}
	}
	if isStanza(el) {
		c.fail(stream.NotAuthorized, "authenticate first")
		return false, false
	}
	c.fail(stream.UnsupportedStanzaType, "")
	return false, false
}

// register answers a XEP-0077 IQ before authentication, synchronously:
// the stream has nothing else to do meanwhile.
func (c *session) register(el, payload *stream.Element) bool {
	typ := el.Attr("type")
	if typ != "get" && typ != "set" {
		return true // results and errors to the server are dropped
	}
	iq := router.IQ{Stanza: el, To: jid.MustParse(c.srv.cfg.Domain), Type: typ, Payload: payload}
	remote, _ := netip.ParseAddr(c.addr)
	res, err := c.srv.cfg.Register(remote.Unmap()).HandleIQ(c.ctx, iq)
	if err != nil {
		var se *stanza.Error
		if !errors.As(err, &se) {
			c.log.WithError(err).Warn("c2s: registration")
			se = &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
		}
		return c.iqError(el, se)
	}
	return c.write(stanza.Result(el, res))
}

// bindingMismatch reports a failure over the choice of channel binding,
// not over the password. Clients that know only tls-unique (slixmpp, older
// libraries) try a -PLUS mechanism first and then fall back: those
// attempts guess nothing and must not count towards throttling.
func bindingMismatch(err error) bool {
	var se *sasl.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.ServerError {
	case "unsupported-channel-binding-type", "server-does-support-channel-binding", "channel-binding-not-supported":
		return true
	}
	return false
}

// decodeSASL decodes a SASL payload; "=" is an empty response (RFC 6120
// §6.4.2).
func decodeSASL(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("sasl payload: %w", err)
	}
	return b, nil
}

func (c *session) saslAuth(el *stream.Element) (restart, ok bool) {
	c.auth, c.attempt = nil, ""
	if c.srv.addrFails.Blocked(c.addr) {
		return false, c.saslFail(sasl.TemporaryAuthFailure, false)
	}
	srv, err := sasl.NewServer(el.Attr("mechanism"), sasl.Config{
		Lookup:          c.lookup,
		ChannelBindings: c.bindings,
		TLS:             c.tls != nil,
		MockSecret:      c.srv.cfg.SASLSecret,
	})
	if err != nil {
		return false, c.saslFail(sasl.ConditionOf(err), false)
	}
	in, err := decodeSASL(el.Text())
	if err != nil {
		return false, c.saslFail(sasl.IncorrectEncoding, false)
	}
	c.auth = srv
	return c.saslStep(in)
}

// lookup is the SASL credential lookup: it refuses throttled accounts
// before anything else and remembers whose login this is, so that a
// failure counts against that account.
func (c *session) lookup(ctx context.Context, username string, h sasl.Hash) (sasl.Credentials, error) {
	c.attempt = username
	if c.srv.acctFails.Blocked(username) {
		return sasl.Credentials{}, sasl.TemporaryAuthFailure
	}
	user, err := jid.New(username, c.srv.cfg.Domain, "")
	if err != nil {
		return sasl.Credentials{}, fmt.Errorf("%q: %w", username, sasl.ErrUnknownUser)
	}
	return c.srv.cfg.Credentials.Credentials(ctx, user, h)
}

func (c *session) saslStep(in []byte) (restart, ok bool) {
	out, done, err := c.auth.Step(c.ctx, in)
	if err != nil {
		c.auth = nil
		cond := sasl.ConditionOf(err)
		c.log.WithError(err).Debug("c2s: authentication failed")
		return false, c.saslFail(cond, cond == sasl.NotAuthorized && !bindingMismatch(err))
	}
	if !done {
		ch := stream.NewElement(NSSASL, "challenge")
		if len(out) > 0 {
			ch.AddText(base64.StdEncoding.EncodeToString(out))
		}
		return false, c.write(ch)
	}
	res := c.auth.Result()
	c.auth = nil
	user, err := jid.New(res.Username, c.srv.cfg.Domain, "")
	if err != nil {
		return false, c.saslFail(sasl.NotAuthorized, true)
	}
	if res.Authzid != "" {
		if az, err := jid.Parse(res.Authzid); err != nil || !az.Equal(user) {
			return false, c.saslFail(sasl.InvalidAuthzid, false)
		}
	}
	succ := stream.NewElement(NSSASL, "success")
	if len(out) > 0 {
		succ.AddText(base64.StdEncoding.EncodeToString(out))
	}
	if !c.write(succ) {
		return false, false
	}
	c.srv.acctFails.Succeed(res.Username)
	c.srv.addrFails.Succeed(c.addr)
	if f := c.srv.cfg.OnAuthenticated; f != nil {
		f(c.ctx, user, res)
	}
	clear(res.ClientKey)
	c.user, c.stage = user, stageBind
	c.log = c.log.WithField("user", user.String())
	c.r.Restart()
	c.wmu.Lock()
	c.w.Restart()
	c.wmu.Unlock()
	return true, true
}

// saslFail sends <failure/>. A wrong password (counted) counts against the
// account and the address; too many failures on one connection end it.
func (c *session) saslFail(cond sasl.Condition, counted bool) bool {
	if counted {
		if c.attempt != "" {
			c.srv.acctFails.Fail(c.attempt)
		}
		c.srv.addrFails.Fail(c.addr)
	}
	if !c.write(saslFailure(cond)) {
		return false
	}
	if c.failures++; c.failures >= maxSASLFailures {
		c.fail(stream.PolicyViolation, "too many failed authentication attempts")
		return false
	}
	return true
}

func saslFailure(cond sasl.Condition) *stream.Element {
	return stream.NewElement(NSSASL, "failure").AddChild(stream.NewElement(NSSASL, string(cond)))
}
