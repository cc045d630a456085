package keystore

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"verlauf.im/verlauf/domain/envelope"
)

// Interim is what the server holds for an account whose identity could
// not be wrapped under the user's own ClientKeys: one imported from SCRAM
// verifiers by an operator who does not know the password. The identity
// is wrapped, per SCRAM hash, under a random interim key instead, and the
// interim keys live here until the user's logins replace them (see
// archive.Keys.Reseal). Whoever reads the key store while an interim key
// is in it can open that user's identity: the interim record is exactly
// as protected as the disks the key store is on.
type Interim struct {
	// Keys maps a SCRAM hash name to the interim key the identity's wrap
	// for that hash was made with (a stand-in ClientKey of the hash's
	// size).
	Keys map[string][]byte
	// StoredKeys maps the same hash names to the StoredKey of the user's
	// verifier (H(ClientKey), already in the event log), so that a
	// ClientKey is checked before it replaces an interim wrap.
	StoredKeys map[string][]byte
}

// PutInterimIdentity records the identity of an account with interim
// keys: the public key, the wraps made under in.Keys and the interim
// record, in one synced write, replacing any identity that was there.
func (s *Store) PutInterimIdentity(ctx context.Context, user string, pub envelope.PublicKey, wraps []envelope.WrappedIdentity, in Interim) error {
	if len(in.Keys) == 0 {
		return fmt.Errorf("keystore: interim identity of %s without interim keys", user)
	}
	return s.putIdentity(ctx, user, pub, wraps, &in)
}

// Interim returns the user's interim record, and false if there is none
// (the usual case: one point lookup).
func (s *Store) Interim(ctx context.Context, user string) (Interim, bool, error) {
	v, ok, err := s.get(ctx, userKey(user, tagInterim, nil))
	if err != nil || !ok {
		return Interim{}, false, err
	}
	in, err := decodeInterim(v)
	if err != nil {
		return Interim{}, false, fmt.Errorf("interim keys of %s: %w", user, err)
	}
	return in, true, nil
}

// Reseal replaces the wraps of some hashes (now made under the user's own
// ClientKeys) and keeps rest as the interim record, in one synced write;
// an empty rest deletes the record. The replaced wraps and the interim
// keys no longer held are compacted out of the store's files, as a
// delete is (see the package documentation).
func (s *Store) Reseal(ctx context.Context, user string, wraps []envelope.WrappedIdentity, rest Interim) error {
	if err := checkUser(user); err != nil {
		return err
	}
	var rec []byte
	if len(rest.Keys) > 0 {
		var err error
		if rec, err = encodeInterim(rest); err != nil {
			return err
		}
	}
	exit, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer exit()
	b := s.db.NewBatch()
	defer b.Close()
	for _, w := range wraps {
		if err := b.Set(userKey(user, tagWrapped, []byte(w.Hash)), encodeWrap(w), nil); err != nil {
			return fmt.Errorf("keystore: reseal: %w", err)
		}
	}
	ik := userKey(user, tagInterim, nil)
	if rec != nil {
		err = b.Set(ik, rec, nil)
	} else {
		err = b.Delete(ik, nil)
	}
	if err != nil {
		return fmt.Errorf("keystore: reseal: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("keystore: reseal: %w", err)
	}
	return s.compact(ctx, ik, prefixEnd(userKey(user, tagWrapped, nil)))
}

const interimV1 = 1

// encodeInterim is version(1) ‖ count(1) ‖ per hash, in name order:
// name length(1) ‖ name ‖ key length(1) ‖ key ‖ stored key length(1) ‖
// stored key.
func encodeInterim(in Interim) ([]byte, error) {
	v := []byte{interimV1, byte(len(in.Keys))}
	if len(in.Keys) > 255 {
		return nil, fmt.Errorf("keystore: %d interim keys", len(in.Keys))
	}
	for _, h := range slices.Sorted(maps.Keys(in.Keys)) {
		k, sk := in.Keys[h], in.StoredKeys[h]
		if len(h) > 255 || len(k) == 0 || len(k) > 255 || len(sk) == 0 || len(sk) > 255 {
			return nil, fmt.Errorf("keystore: unusable interim key for %q", h)
		}
		v = append(v, byte(len(h)))
		v = append(v, h...)
		v = append(v, byte(len(k)))
		v = append(v, k...)
		v = append(v, byte(len(sk)))
		v = append(v, sk...)
	}
	return v, nil
}

func decodeInterim(v []byte) (Interim, error) {
	if len(v) < 2 || v[0] != interimV1 {
		return Interim{}, ErrCorrupt
	}
	n := int(v[1])
	rest := v[2:]
	next := func() ([]byte, bool) {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return nil, false
		}
		f := rest[1 : 1+int(rest[0])]
		rest = rest[1+int(rest[0]):]
		return append([]byte(nil), f...), true
	}
	in := Interim{Keys: make(map[string][]byte, n), StoredKeys: make(map[string][]byte, n)}
	for range n {
		h, ok1 := next()
		k, ok2 := next()
		sk, ok3 := next()
		if !ok1 || !ok2 || !ok3 {
			return Interim{}, ErrCorrupt
		}
		in.Keys[string(h)], in.StoredKeys[string(h)] = k, sk
	}
	if len(rest) != 0 {
		return Interim{}, ErrCorrupt
	}
	return in, nil
}
