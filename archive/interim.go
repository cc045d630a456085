package archive

import (
	"context"
	"crypto/sha1" // SCRAM-SHA-1's StoredKey is a SHA-1 digest.
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
	"verlauf.im/verlauf/eventstore/keystore"
)

// ProvisionInterim creates the identity of an account imported from SCRAM
// verifiers without the user's password (an operator's bulk import):
// nobody knows the ClientKeys, so the identity is wrapped, per verifier
// hash, under a random interim key that the key store keeps beside it
// (keystore.Interim), with the verifier's StoredKey to check ClientKeys
// against later. History imported or archived until the user's first
// login is sealed to the public key as usual; until then the key store
// alone opens it. Reseal, at the user's logins, replaces the interim
// wraps with wraps under the user's ClientKeys and shreds the interim
// keys.
func (k *Keys) ProvisionInterim(ctx context.Context, user jid.JID, verifiers []domain.SCRAMVerifier) error {
	u, err := bare(user)
	if err != nil {
		return err
	}
	if len(verifiers) == 0 {
		return fmt.Errorf("%w: no verifiers", ErrInvalid)
	}
	if _, ok, err := k.store.PublicKey(ctx, u); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w: %s", ErrProvisioned, u)
	}
	in := keystore.Interim{Keys: map[string][]byte{}, StoredKeys: map[string][]byte{}}
	for _, v := range verifiers {
		size, err := clientKeySize(v.Hash)
		if err != nil {
			return err
		}
		if len(v.StoredKey) != size {
			return fmt.Errorf("%w: %s StoredKey of %d bytes", ErrInvalid, v.Hash, len(v.StoredKey))
		}
		key := make([]byte, size)
		if _, err := io.ReadFull(k.rand, key); err != nil {
			return fmt.Errorf("archive: interim key: %w", err)
		}
		in.Keys[v.Hash] = key
		in.StoredKeys[v.Hash] = append([]byte(nil), v.StoredKey...)
	}
	id, pub, err := envelope.NewIdentity(k.rand)
	if err != nil {
		return err
	}
	defer id.Wipe()
	wraps, err := k.wrapAll(id, u, in.Keys)
	if err != nil {
		return err
	}
	if err := k.store.PutInterimIdentity(ctx, u, pub, wraps, in); err != nil {
		return err
	}
	k.mu.Lock()
	k.pubs[u] = pub
	k.mu.Unlock()
	return nil
}

// Reseal ends the interim keys of an imported account (ProvisionInterim)
// for the hashes of clientKeys (hash → ClientKey of a successful login:
// SCRAM gives the mechanism's hash only, PLAIN gives every hash the
// account has a verifier for, derived with ClientKeyFromPassword). For
// each such hash still interim, the ClientKey is checked against the
// verifier's StoredKey, the identity is opened with the interim key and
// wrapped under the ClientKey, and the interim key of that hash is
// deleted and compacted out of the key store, in one synced write. It
// reports whether anything was resealed.
//
// For every other account it costs one key-store lookup and does
// nothing, so the front ends call it at every successful login, before
// Unlock (Unlock also reseals the login's hash by itself when it finds an
// interim wrap, so a front end that forgets is not locked out; calling
// Reseal with every ClientKey the login yields ends the interim keys of
// more hashes at once).
//
// A hash with a verifier but no login with it yet keeps its interim key:
// a SCRAM-SHA-256 login cannot derive the SHA-1 ClientKey (that needs the
// password), and the only key that could wrap the identity for SHA-1
// without it is one the server holds, which is what the interim key is.
// Dropping that wrap instead would leave a later SCRAM-SHA-1 login
// authenticated but unable to read the history. Accounts exported by
// Prosody or ejabberd carry one hash only, so for them the first login
// ends the interim key; an account with both (a verlauf export with
// credentials) keeps the other hash's key until a login with that
// mechanism, a PLAIN login, or a password change (Rewrap).
//
// ErrWrongKey: a ClientKey for an interim hash did not match the
// verifier; nothing changed.
func (k *Keys) Reseal(ctx context.Context, user jid.JID, clientKeys map[string][]byte) (bool, error) {
	u, err := bare(user)
	if err != nil {
		return false, err
	}
	if _, ok, err := k.store.Interim(ctx, u); err != nil || !ok {
		return false, err
	}
	// Two logins at once must not each write back the other's interim
	// key; reseals are rare, so one lock for all users is enough.
	k.resealMu.Lock()
	defer k.resealMu.Unlock()
	in, ok, err := k.store.Interim(ctx, u)
	if err != nil || !ok {
		return false, err
	}
	good := map[string][]byte{}
	wrong := false
	for h, ck := range clientKeys {
		sk, pending := in.StoredKeys[h]
		if !pending {
			continue
		}
		if !matchesStoredKey(h, ck, sk) {
			wrong = true
			continue
		}
		good[h] = ck
	}
	if len(good) == 0 {
		if wrong {
			return false, fmt.Errorf("%w: %s (interim)", ErrWrongKey, u)
		}
		return false, nil
	}
	id, err := k.openInterim(ctx, u, in)
	if err != nil {
		return false, err
	}
	defer id.Wipe()
	wraps, err := k.wrapAll(id, u, good)
	if err != nil {
		return false, err
	}
	rest := keystore.Interim{Keys: map[string][]byte{}, StoredKeys: map[string][]byte{}}
	for h := range in.Keys {
		if good[h] == nil {
			rest.Keys[h], rest.StoredKeys[h] = in.Keys[h], in.StoredKeys[h]
		}
	}
	if err := k.store.Reseal(ctx, u, wraps, rest); err != nil {
		return false, err
	}
	for _, key := range in.Keys {
		clear(key)
	}
	return true, nil
}

// openInterim opens the identity with one of the interim keys and checks
// it against the stored public key.
func (k *Keys) openInterim(ctx context.Context, u string, in keystore.Interim) (*envelope.Identity, error) {
	pub, ok, err := k.store.PublicKey(ctx, u)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no public key for %s", ErrNoKeys, u)
	}
	var errs []error
	for _, h := range slices.Sorted(maps.Keys(in.Keys)) {
		w, ok, err := k.store.WrappedIdentity(ctx, u, h)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		id, err := envelope.Unwrap(w, u, in.Keys[h])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if id.PublicKey() != pub {
			id.Wipe()
			return nil, fmt.Errorf("%w: %s", ErrPublicKeyMismatch, u)
		}
		return id, nil
	}
	return nil, fmt.Errorf("archive: interim keys of %s open no wrap: %w", u, errors.Join(append(errs, ErrNoKeys)...))
}

// matchesStoredKey reports whether H(clientKey) is storedKey, the check a
// SCRAM server makes of a proof (RFC 5802 §3).
func matchesStoredKey(hash string, clientKey, storedKey []byte) bool {
	var sum []byte
	switch hash {
	case domain.HashSHA1:
		s := sha1.Sum(clientKey)
		sum = s[:]
	case domain.HashSHA256:
		s := sha256.Sum256(clientKey)
		sum = s[:]
	default:
		return false
	}
	return subtle.ConstantTimeCompare(sum, storedKey) == 1
}

func clientKeySize(hash string) (int, error) {
	switch hash {
	case domain.HashSHA1:
		return sha1.Size, nil
	case domain.HashSHA256:
		return sha256.Size, nil
	}
	return 0, fmt.Errorf("%w: unknown SCRAM hash %q", ErrInvalid, hash)
}
