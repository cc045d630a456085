package load

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // SCRAM-SHA-1 is a protocol requirement, not a choice
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// errServerSignature means the server did not prove it knows the verifier.
var errServerSignature = errors.New("scram: server signature mismatch")

// keyCache holds SCRAM ClientKey and ServerKey per account, salt and
// iteration count, as real clients keep them (RFC 5802 §5.1 suggests it),
// so that a client that has logged in once does not run PBKDF2 again.
// Without it the load tool's own PBKDF2 on its one core bounds logins/s,
// not the server. The cache never changes what goes over the wire: proof
// and server signature are computed from the same keys either way.
type keyCache struct {
	mu   sync.Mutex
	keys map[keyID]scramKeys
}

type keyID struct {
	mech, user, salt string
	iter             int
}

type scramKeys struct{ client, server []byte }

func newKeyCache() *keyCache { return &keyCache{keys: make(map[keyID]scramKeys)} }

func (k *keyCache) get(id keyID) (scramKeys, bool) {
	if k == nil {
		return scramKeys{}, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.keys[id]
	return v, ok
}

func (k *keyCache) put(id keyID, v scramKeys) {
	if k == nil {
		return
	}
	k.mu.Lock()
	k.keys[id] = v
	k.mu.Unlock()
}

// scramClient is the client side of SCRAM-SHA-1/-256 without channel
// binding (RFC 5802, RFC 7677). The gs2 header is "n,,": this client does
// not support channel binding, which is true and so never a downgrade.
type scramClient struct {
	mech           string
	h              func() hash.Hash
	user, password string
	nonce          string
	cache          *keyCache

	clientFirstBare string
	authMessage     string
	id              keyID
	keys            scramKeys
}

func newSCRAM(mech, user, password string, cache *keyCache) (*scramClient, error) {
	var h func() hash.Hash
	switch mech {
	case "SCRAM-SHA-256":
		h = sha256.New
	case "SCRAM-SHA-1":
		h = sha1.New
	default:
		return nil, fmt.Errorf("scram: unsupported mechanism %s", mech)
	}
	b := make([]byte, 18)
	rand.Read(b)
	return &scramClient{mech: mech, h: h, user: user, password: password,
		nonce: base64.RawStdEncoding.EncodeToString(b), cache: cache}, nil
}

// first is the client-first-message.
func (s *scramClient) first() string {
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	s.clientFirstBare = "n=" + name + ",r=" + s.nonce
	return "n,," + s.clientFirstBare
}

// final answers the server-first-message with the client-final-message.
func (s *scramClient) final(serverFirst string) (string, error) {
	var nonce, salt string
	iter := -1
	for attr := range strings.SplitSeq(serverFirst, ",") {
		k, v, ok := strings.Cut(attr, "=")
		if !ok {
			return "", fmt.Errorf("scram: malformed server-first %q", serverFirst)
		}
		switch k {
		case "r":
			nonce = v
		case "s":
			salt = v
		case "i":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return "", fmt.Errorf("scram: bad iteration count %q", v)
			}
			iter = n
		case "m":
			return "", errors.New("scram: server sent the reserved attribute m")
		}
	}
	if !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce) {
		return "", errors.New("scram: server nonce does not extend the client nonce")
	}
	rawSalt, err := base64.StdEncoding.DecodeString(salt)
	if err != nil || len(rawSalt) == 0 || iter < 0 {
		return "", fmt.Errorf("scram: bad salt or iteration count in %q", serverFirst)
	}
	s.id = keyID{mech: s.mech, user: s.user, salt: salt, iter: iter}
	keys, ok := s.cache.get(s.id)
	if !ok {
		salted, err := pbkdf2.Key(s.h, s.password, rawSalt, iter, s.h().Size())
		if err != nil {
			return "", fmt.Errorf("scram: %w", err)
		}
		keys = scramKeys{client: s.mac(salted, "Client Key"), server: s.mac(salted, "Server Key")}
	}
	s.keys = keys
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte("n,,")) + ",r=" + nonce
	s.authMessage = s.clientFirstBare + "," + serverFirst + "," + withoutProof
	stored := s.h()
	stored.Write(keys.client)
	sig := s.mac(stored.Sum(nil), s.authMessage)
	proof := make([]byte, len(sig))
	subtle.XORBytes(proof, keys.client, sig)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

// verify checks the server-final-message and, once the server has proved
// itself, keeps the keys for the next login.
func (s *scramClient) verify(serverFinal string) error {
	if e, ok := strings.CutPrefix(serverFinal, "e="); ok {
		return fmt.Errorf("%w: scram: %s", errFailure, e)
	}
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if !ok {
		return fmt.Errorf("scram: malformed server-final %q", serverFinal)
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !hmac.Equal(got, s.mac(s.keys.server, s.authMessage)) {
		return errServerSignature
	}
	s.cache.put(s.id, s.keys)
	return nil
}

func (s *scramClient) mac(key []byte, msg string) []byte {
	m := hmac.New(s.h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
