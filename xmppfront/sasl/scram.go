package sasl

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
)

// serverNonceLen is the number of random bytes in the server's nonce half.
const serverNonceLen = 18

// scramServer is the server side of SCRAM-SHA-1/-256[-PLUS], RFC 5802 §5.
type scramServer struct {
	cfg  Config
	name string
	hash Hash
	fn   func() hash.Hash
	plus bool

	// fixedNonce replaces the random server nonce; tests use it to replay
	// the published exchanges byte for byte.
	fixedNonce string

	stage       int
	first       clientFirst
	username    string
	cb          ChannelBinding // bound to with cbFlag 'p'
	creds       Credentials
	mock        bool
	nonce       string // c-nonce + s-nonce
	serverFirst string
	res         Result
}

func (s *scramServer) result() Result { return s.res }

func (s *scramServer) step(ctx context.Context, in []byte) ([]byte, bool, error) {
	s.stage++
	switch s.stage {
	case 1:
		out, err := s.clientFirst(ctx, string(in))
		return out, false, err
	case 2:
		out, err := s.clientFinal(string(in))
		return out, err == nil, err
	}
	return nil, false, malformed("", "unexpected SCRAM step %d", s.stage)
}

func (s *scramServer) clientFirst(ctx context.Context, msg string) ([]byte, error) {
	cf, err := parseClientFirst(msg)
	if err != nil {
		return nil, err
	}
	if err := s.negotiateBinding(cf); err != nil {
		return nil, err
	}
	s.first = cf
	s.username, err = prepareUsername(cf.username)
	if err != nil {
		return nil, fail(MalformedRequest, errInvalidUsernameEncoding, err)
	}
	s.creds, s.mock, err = credentials(ctx, s.cfg, s.username, s.hash)
	if err != nil {
		return nil, err
	}
	snonce := s.fixedNonce
	if snonce == "" {
		b := make([]byte, serverNonceLen)
		if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
			return nil, fail(TemporaryAuthFailure, errOtherError, fmt.Errorf("nonce: %w", err))
		}
		snonce = base64.RawStdEncoding.EncodeToString(b)
	}
	s.nonce = cf.nonce + snonce
	s.serverFirst = "r=" + s.nonce +
		",s=" + base64.StdEncoding.EncodeToString(s.creds.Salt) +
		",i=" + strconv.Itoa(s.creds.Iterations)
	return []byte(s.serverFirst), nil
}

// negotiateBinding applies RFC 5802 §6 to the client's GS2 flag.
func (s *scramServer) negotiateBinding(cf clientFirst) error {
	supported := len(s.cfg.ChannelBindings) > 0
	switch cf.cbFlag {
	case 'p':
		if !s.plus {
			return malformed(errCBNotSupported, "channel binding requested with %s", s.name)
		}
		for _, cb := range s.cfg.ChannelBindings {
			if cb.Type == cf.cbName {
				s.cb = cb
				return nil
			}
		}
		return fail(NotAuthorized, errUnsupportedCBType, fmt.Errorf("channel-binding type %q", cf.cbName))
	case 'y':
		if s.plus {
			return malformed(errOtherError, "%s without channel binding", s.name)
		}
		if supported {
			// The client could bind but thought we could not: the -PLUS
			// offer was stripped on the way.
			return fail(NotAuthorized, errServerDoesSupportCB, errors.New("client says y while -PLUS was offered"))
		}
	default: // 'n'
		if s.plus {
			return malformed(errOtherError, "%s without channel binding", s.name)
		}
	}
	return nil
}

func (s *scramServer) clientFinal(msg string) ([]byte, error) {
	cf, err := parseClientFinal(msg)
	if err != nil {
		return nil, err
	}

	// c= must be base64(gs2-header [cb-data]) exactly.
	cbind, err := base64.StdEncoding.Strict().DecodeString(cf.cbind)
	if err != nil {
		return nil, malformed(errInvalidEncoding, "c=: %v", err)
	}
	want := make([]byte, 0, len(s.first.gs2Header)+len(s.cb.Data))
	want = append(append(want, s.first.gs2Header...), s.cb.Data...)
	if subtle.ConstantTimeCompare(cbind, want) != 1 {
		return nil, fail(NotAuthorized, errChannelBindingsDontMatch, errors.New("c= does not match"))
	}

	if subtle.ConstantTimeCompare([]byte(cf.nonce), []byte(s.nonce)) != 1 {
		return nil, fail(NotAuthorized, errOtherError, errors.New("nonce does not match"))
	}

	proof, err := base64.StdEncoding.Strict().DecodeString(cf.proof)
	if err != nil {
		return nil, malformed(errInvalidEncoding, "p=: %v", err)
	}
	if len(proof) != len(s.creds.StoredKey) {
		return nil, malformed(errInvalidEncoding, "proof of %d bytes", len(proof))
	}

	// AuthMessage = client-first-message-bare "," server-first-message ","
	//               client-final-message-without-proof
	authMessage := []byte(s.first.bare + "," + s.serverFirst + "," + cf.withoutProof)
	clientSignature := mac(s.fn, s.creds.StoredKey, authMessage)
	clientKey := make([]byte, len(proof))
	subtle.XORBytes(clientKey, proof, clientSignature)
	valid := subtle.ConstantTimeCompare(sum(s.fn, clientKey), s.creds.StoredKey)
	if valid != 1 || s.mock {
		clear(clientKey)
		err := errors.New("wrong password")
		if s.mock {
			err = fmt.Errorf("wrong password: %w", ErrUnknownUser)
		}
		return nil, fail(NotAuthorized, errInvalidProof, err)
	}

	s.res = Result{
		Mechanism:      s.name,
		Username:       s.username,
		Authzid:        s.first.authzid,
		Hash:           s.hash,
		ClientKey:      clientKey,
		ChannelBinding: s.cb.Type,
	}
	serverSignature := mac(s.fn, s.creds.ServerKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSignature)), nil
}
