package sasl

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// credentials looks the user up. For an unknown user it returns made-up
// credentials and mock=true, so the exchange runs on to the very end and
// fails there exactly like a wrong password (RFC 5802 §5.1).
func credentials(ctx context.Context, cfg Config, user string, h Hash) (c Credentials, mock bool, err error) {
	c, err = cfg.Lookup(ctx, user, h)
	switch {
	case errors.Is(err, ErrUnknownUser):
		return mockCredentials(cfg, user, h), true, nil
	case err != nil:
		var cond Condition
		if errors.As(err, &cond) {
			return Credentials{}, false, fail(cond, errOtherError, err)
		}
		return Credentials{}, false, fail(TemporaryAuthFailure, errOtherError, fmt.Errorf("lookup: %w", err))
	}
	if err := c.check(h); err != nil {
		return Credentials{}, false, fail(TemporaryAuthFailure, errOtherError, err)
	}
	return c, false, nil
}

// mockCredentials derives a salt and keys from the server secret and the
// name: stable for a name, unpredictable without the secret. One HKDF call
// keeps the unknown-user path about as cheap as a lookup hit.
func mockCredentials(cfg Config, user string, h Hash) Credentials {
	fn, _ := h.fn()
	size := fn().Size()
	info := "verlauf sasl mock credentials\x00" + string(h) + "\x00" + user
	out, err := hkdf.Key(sha256.New, cfg.MockSecret, nil, info, cfg.MockSaltLen+2*size)
	if err != nil {
		// Only reachable beyond 255*32 bytes; NewServer bounds the length.
		panic(err)
	}
	return Credentials{
		Salt:       out[:cfg.MockSaltLen:cfg.MockSaltLen],
		Iterations: cfg.MockIterations,
		StoredKey:  out[cfg.MockSaltLen : cfg.MockSaltLen+size : cfg.MockSaltLen+size],
		ServerKey:  out[cfg.MockSaltLen+size:],
	}
}
