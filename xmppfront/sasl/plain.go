package sasl

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// plainServer is the server side of PLAIN, RFC 4616. It checks the password
// against the SCRAM credentials by deriving them again, so an account needs
// no other verifier; that makes every PLAIN login cost one PBKDF2.
type plainServer struct {
	cfg Config
	res Result
}

func (p *plainServer) result() Result { return p.res }

func (p *plainServer) step(ctx context.Context, in []byte) ([]byte, bool, error) {
	if p.res.Mechanism != "" {
		return nil, false, malformed("", "PLAIN has one step")
	}
	msg := string(in)
	if !utf8.ValidString(msg) {
		return nil, false, malformed("", "message is not UTF-8")
	}
	// message = [authzid] UTF8NUL authcid UTF8NUL passwd
	parts := strings.Split(msg, "\x00")
	if len(parts) != 3 {
		return nil, false, malformed("", "want 3 NUL-separated fields, got %d", len(parts))
	}
	authzid, authcid, password := parts[0], parts[1], parts[2]
	if authcid == "" || password == "" {
		return nil, false, malformed("", "empty authcid or password")
	}
	user, err := prepareUsername(authcid)
	if err != nil {
		return nil, false, fail(MalformedRequest, "", err)
	}
	prepared, err := PreparePassword(password)
	if err != nil {
		// A password that could never have been registered.
		return nil, false, fail(NotAuthorized, "", err)
	}

	cfg := p.cfg
	if len(cfg.MockSecret) == 0 {
		// The mock salt is never shown under PLAIN; any key will do.
		cfg.MockSecret = make([]byte, 32)
	}
	h := cfg.PlainHash
	creds, mock, err := credentials(ctx, cfg, user, h)
	if err != nil {
		return nil, false, err
	}
	// Derive even for an unknown user: skipping PBKDF2 would tell by the
	// response time that the account does not exist.
	clientKey, derived, err := DeriveKeys(h, prepared, creds.Salt, creds.Iterations)
	if err != nil {
		return nil, false, fmt.Errorf("derive: %w", err)
	}
	valid := subtle.ConstantTimeCompare(derived.StoredKey, creds.StoredKey)
	if valid != 1 || mock {
		clear(clientKey)
		err := errors.New("wrong password")
		if mock {
			err = fmt.Errorf("wrong password: %w", ErrUnknownUser)
		}
		return nil, false, fail(NotAuthorized, "", err)
	}
	p.res = Result{
		Mechanism: Plain,
		Username:  user,
		Authzid:   authzid,
		Hash:      h,
		ClientKey: clientKey,
		Password:  prepared,
	}
	return nil, true, nil
}
