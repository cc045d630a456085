package sasl

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/secure/precis"
)

// The mechanisms this package serves, strongest first.
const (
	ScramSHA256Plus = "SCRAM-SHA-256-PLUS"
	ScramSHA1Plus   = "SCRAM-SHA-1-PLUS"
	ScramSHA256     = "SCRAM-SHA-256"
	ScramSHA1       = "SCRAM-SHA-1"
	Plain           = "PLAIN"
)

// maxMessage bounds every client message; real ones are well under 1 KiB.
const maxMessage = 4096

// CredentialLookup fetches the stored credentials of a user for one hash.
// username has already been prepared (PRECIS UsernameCaseMapped). It
// returns an error wrapping ErrUnknownUser when there is no such user, a
// Condition (AccountDisabled, CredentialsExpired) to refuse with that
// condition at once, and any other error for a store failure
// (temporary-auth-failure).
type CredentialLookup func(ctx context.Context, username string, h Hash) (Credentials, error)

// Config is what a Server needs from the stream. One Config may serve many
// Servers (one per authentication attempt) on the same connection.
type Config struct {
	// Lookup is required.
	Lookup CredentialLookup

	// ChannelBindings are the bindings this server can check on the
	// connection (see ChannelBindings). A non-empty list means the server
	// supports channel binding and has offered the -PLUS mechanisms, so a
	// client that says "y" (I could bind, you seemed unable to) is refused as
	// RFC 5802 §6 demands: someone stripped -PLUS from the offer.
	ChannelBindings []ChannelBinding

	// TLS reports that the stream is encrypted. PLAIN refuses to run
	// without it (encryption-required).
	TLS bool

	// MockSecret keys the made-up salt and keys used for unknown users
	// (RFC 5802 §5.1), so that the same unknown name always gets the same
	// salt, as a real one would. Required for SCRAM, at least 16 bytes, and
	// stable across restarts and cluster nodes.
	MockSecret []byte
	// MockIterations is the iteration count shown for unknown users; set it
	// to what real accounts use. Default 4096.
	MockIterations int
	// MockSaltLen is the salt length shown for unknown users; set it to
	// what real accounts use. Default 16.
	MockSaltLen int

	// PlainHash is the credential set PLAIN checks the password against.
	// Default SHA-256.
	PlainHash Hash

	// Rand is the source of server nonces. Default crypto/rand.
	Rand io.Reader
}

// Result is what a successful exchange established.
type Result struct {
	Mechanism string
	// Username is the authenticated identity, prepared with PRECIS
	// UsernameCaseMapped (the XMPP localpart profile).
	Username string
	// Authzid is the authorization identity the client asked for, "" if
	// none. It is not checked here; the caller answers invalid-authzid.
	Authzid string
	// Hash is the hash ClientKey belongs to.
	Hash Hash
	// ClientKey is the user's SCRAM ClientKey for Hash. Secret: derive
	// what is needed from it and clear it.
	ClientKey []byte
	// Password is the prepared password (PLAIN only); the caller derives
	// the ClientKey for other hashes from it with DeriveKeys.
	Password string
	// ChannelBinding is the channel-binding type the client bound to, ""
	// if none.
	ChannelBinding string
}

// Mechanisms lists what to offer, strongest first: the -PLUS variants only
// when there is something to bind to, PLAIN only over TLS.
func Mechanisms(tlsActive bool, bindings []ChannelBinding) []string {
	var m []string
	if len(bindings) > 0 {
		m = append(m, ScramSHA256Plus, ScramSHA1Plus)
	}
	m = append(m, ScramSHA256, ScramSHA1)
	if tlsActive {
		m = append(m, Plain)
	}
	return m
}

// mechanism is one authentication attempt of one mechanism.
type mechanism interface {
	// step consumes one client message; it returns the next server message
	// and whether the exchange succeeded with it.
	step(ctx context.Context, in []byte) (out []byte, done bool, err error)
	result() Result
}

// Server runs one authentication attempt. It is not safe for concurrent
// use; a stream drives it from its read loop.
type Server struct {
	name    string
	mech    mechanism
	started bool // an empty challenge was sent for a missing initial response
	done    bool
	err     error
}

// NewServer starts an attempt with the mechanism the client selected. An
// unknown mechanism, or a -PLUS one without channel bindings, fails with
// invalid-mechanism; PLAIN without TLS with encryption-required.
func NewServer(mech string, cfg Config) (*Server, error) {
	if cfg.Lookup == nil {
		return nil, errors.New("sasl: Config.Lookup is nil")
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.MockIterations == 0 {
		cfg.MockIterations = MinIterations
	}
	if cfg.MockSaltLen == 0 {
		cfg.MockSaltLen = 16
	}
	if cfg.PlainHash == "" {
		cfg.PlainHash = SHA256
	}
	if _, err := cfg.PlainHash.fn(); err != nil {
		return nil, err
	}
	if cfg.MockSaltLen < minSaltLen || cfg.MockSaltLen > 64 {
		return nil, fmt.Errorf("sasl: Config.MockSaltLen %d out of range", cfg.MockSaltLen)
	}
	s := &Server{name: mech}
	switch mech {
	case Plain:
		if !cfg.TLS {
			return nil, fail(EncryptionRequired, "", errors.New("PLAIN without TLS"))
		}
		s.mech = &plainServer{cfg: cfg}
		return s, nil
	case ScramSHA1, ScramSHA256, ScramSHA1Plus, ScramSHA256Plus:
		plus := strings.HasSuffix(mech, "-PLUS")
		if plus && len(cfg.ChannelBindings) == 0 {
			return nil, fail(InvalidMechanism, "", fmt.Errorf("%s without channel bindings", mech))
		}
		if len(cfg.MockSecret) < 16 {
			return nil, errors.New("sasl: Config.MockSecret must be at least 16 bytes")
		}
		h := SHA256
		if strings.HasPrefix(mech, ScramSHA1) {
			h = SHA1
		}
		fn, _ := h.fn()
		s.mech = &scramServer{cfg: cfg, name: mech, hash: h, fn: fn, plus: plus}
		return s, nil
	}
	return nil, fail(InvalidMechanism, "", fmt.Errorf("mechanism %q", mech))
}

// Mechanism returns the name of the mechanism being run.
func (s *Server) Mechanism() string { return s.name }

// Step feeds the next client message (the base64-decoded payload of <auth>
// or <response>). It returns the server's answer: a challenge while done is
// false, the additional data for <success> (possibly nil) once done is true.
// After an error the attempt is over and Step keeps returning that error;
// the caller sends <failure> with ConditionOf(err).
func (s *Server) Step(ctx context.Context, in []byte) (out []byte, done bool, err error) {
	if s.err != nil {
		return nil, false, s.err
	}
	if s.done {
		s.err = fail(MalformedRequest, "", errors.New("step after success"))
		return nil, false, s.err
	}
	// An <auth> without initial response: ask for it with an empty
	// challenge (RFC 6120 §6.4.2), once.
	if len(in) == 0 && !s.started {
		s.started = true
		return []byte{}, false, nil
	}
	s.started = true
	if len(in) > maxMessage {
		s.err = fail(MalformedRequest, errInvalidEncoding, fmt.Errorf("message of %d bytes", len(in)))
		return nil, false, s.err
	}
	out, done, err = s.mech.step(ctx, in)
	if err != nil {
		var se *Error
		if !errors.As(err, &se) {
			err = fail(TemporaryAuthFailure, errOtherError, err)
		}
		s.err = err
		return nil, false, err
	}
	s.done = done
	return out, done, nil
}

// Result returns what the exchange established. It is the zero Result
// unless Step has reported done without error.
func (s *Server) Result() Result {
	if !s.done || s.err != nil {
		return Result{}
	}
	return s.mech.result()
}

// prepareUsername applies the XMPP localpart profile (RFC 7622 §3.3.1).
func prepareUsername(u string) (string, error) {
	p, err := precis.UsernameCaseMapped.String(u)
	if err != nil {
		return "", fmt.Errorf("username: %w", err)
	}
	return p, nil
}
