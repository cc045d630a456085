package keystore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"verlauf.im/verlauf/domain/envelope"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("keystore: closed")

// ErrCorrupt is wrapped when a stored value does not decode.
var ErrCorrupt = errors.New("keystore: corrupt value")

// DataKey is a sealed data key with its metadata.
type DataKey struct {
	// Sealed is the key sealed to the user's public key; Sealed.ID is the
	// key's id, which every record sealed under it carries.
	Sealed envelope.SealedDataKey
	// Kind says which records the key seals (archive or offline).
	Kind envelope.Kind
	// Created is when the key was made; with Uses it drives rotation.
	Created time.Time
	// Uses is how many records the key has sealed, as last recorded (see
	// SetUses).
	Uses int
}

// Store is the key store. It is safe for concurrent use.
type Store struct {
	db *pebble.DB
	// life is held shared by every operation and exclusively by Close, so
	// the database is never used after it closes.
	life   sync.RWMutex
	closed bool
}

// Open opens (creating if needed) the key store in dir.
func Open(dir string) (*Store, error) {
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 shredFS{FS: vfs.Default},
		Cleaner:            shredCleaner{},
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             quietLogger{},
	})
	if err != nil {
		return nil, fmt.Errorf("keystore: open %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// Close closes the store.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("keystore: close: %w", err)
	}
	return nil
}

func (s *Store) enter(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return nil, ErrClosed
	}
	return s.life.RUnlock, nil
}

const (
	tagPublic  = 'p'
	tagWrapped = 'w'
	tagDataKey = 'k'
	tagInterim = 'i'
)

func userPrefix(user string) []byte {
	k := make([]byte, 0, 3+len(user)+1+16)
	k = append(k, 'u', '/')
	k = append(k, user...)
	return append(k, 0)
}

func userKey(user string, tag byte, rest []byte) []byte {
	return append(append(userPrefix(user), tag), rest...)
}

func checkUser(user string) error {
	if user == "" || strings.IndexByte(user, 0) >= 0 || strings.IndexByte(user, '/') >= 0 {
		return fmt.Errorf("keystore: invalid user %q", user)
	}
	return nil
}

// PutIdentity records the user's public key and wrapped identities,
// replacing any that were there (registration, password change,
// administrator's reset), in one synced write. Wraps made under the
// user's own ClientKeys end any interim key (PutInterimIdentity): it is
// deleted in the same write and compacted out with the old wraps.
func (s *Store) PutIdentity(ctx context.Context, user string, pub envelope.PublicKey, wraps []envelope.WrappedIdentity) error {
	return s.putIdentity(ctx, user, pub, wraps, nil)
}

func (s *Store) putIdentity(ctx context.Context, user string, pub envelope.PublicKey, wraps []envelope.WrappedIdentity, in *Interim) error {
	if err := checkUser(user); err != nil {
		return err
	}
	var rec []byte
	if in != nil {
		var err error
		if rec, err = encodeInterim(*in); err != nil {
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
	// Old wraps of hashes no longer offered must not survive a change.
	lo := userKey(user, tagWrapped, nil)
	if err := b.DeleteRange(lo, prefixEnd(lo), nil); err != nil {
		return fmt.Errorf("keystore: put identity: %w", err)
	}
	if err := b.Set(userKey(user, tagPublic, nil), pub[:], nil); err != nil {
		return fmt.Errorf("keystore: put identity: %w", err)
	}
	for _, w := range wraps {
		if err := b.Set(userKey(user, tagWrapped, []byte(w.Hash)), encodeWrap(w), nil); err != nil {
			return fmt.Errorf("keystore: put identity: %w", err)
		}
	}
	if rec != nil {
		err = b.Set(userKey(user, tagInterim, nil), rec, nil)
	} else {
		err = b.Delete(userKey(user, tagInterim, nil), nil)
	}
	if err != nil {
		return fmt.Errorf("keystore: put identity: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("keystore: put identity: %w", err)
	}
	// A replaced wrap is as much to be forgotten as a deleted one: a copy
	// under the old password must not linger, nor an interim key.
	return s.compact(ctx, userKey(user, tagInterim, nil), prefixEnd(lo))
}

func encodeWrap(w envelope.WrappedIdentity) []byte {
	v := make([]byte, 0, 1+len(w.Salt)+len(w.Blob))
	v = append(v, byte(len(w.Salt)))
	return append(append(v, w.Salt...), w.Blob...)
}

// PublicKey returns the user's public key, and false if there is none.
func (s *Store) PublicKey(ctx context.Context, user string) (envelope.PublicKey, bool, error) {
	var pub envelope.PublicKey
	v, ok, err := s.get(ctx, userKey(user, tagPublic, nil))
	if err != nil || !ok {
		return pub, false, err
	}
	if len(v) != len(pub) {
		return pub, false, fmt.Errorf("%w: public key of %s: %d bytes", ErrCorrupt, user, len(v))
	}
	copy(pub[:], v)
	return pub, true, nil
}

// WrappedIdentity returns the user's identity wrapped for the SCRAM hash,
// and false if there is none.
func (s *Store) WrappedIdentity(ctx context.Context, user, hash string) (envelope.WrappedIdentity, bool, error) {
	v, ok, err := s.get(ctx, userKey(user, tagWrapped, []byte(hash)))
	if err != nil || !ok {
		return envelope.WrappedIdentity{}, false, err
	}
	if len(v) < 1 || int(v[0]) > len(v)-1 {
		return envelope.WrappedIdentity{}, false, fmt.Errorf("%w: wrapped identity of %s (%s)", ErrCorrupt, user, hash)
	}
	n := int(v[0])
	return envelope.WrappedIdentity{Hash: hash, Salt: v[1 : 1+n], Blob: v[1+n:]}, true, nil
}

// PutDataKey records a sealed data key, synced: a record must never be
// sealed under a key that a crash could lose.
func (s *Store) PutDataKey(ctx context.Context, user string, k DataKey) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if k.Sealed.ID == uuid.Nil {
		return errors.New("keystore: data key without id")
	}
	return s.set(ctx, userKey(user, tagDataKey, k.Sealed.ID[:]), encodeDataKey(k), pebble.Sync)
}

// SetUses records a data key's use count. The count is bookkeeping, not a
// secret and not needed for correctness (a restarted server starts a fresh
// key), so the write is not synced. Setting the count of a key that is
// gone does nothing.
func (s *Store) SetUses(ctx context.Context, user string, id uuid.UUID, uses int) error {
	k, ok, err := s.DataKey(ctx, user, id)
	if err != nil || !ok {
		return err
	}
	k.Uses = uses
	return s.set(ctx, userKey(user, tagDataKey, id[:]), encodeDataKey(k), pebble.NoSync)
}

// DataKey returns one sealed data key, and false if it is not (or no
// longer) there.
func (s *Store) DataKey(ctx context.Context, user string, id uuid.UUID) (DataKey, bool, error) {
	v, ok, err := s.get(ctx, userKey(user, tagDataKey, id[:]))
	if err != nil || !ok {
		return DataKey{}, false, err
	}
	k, err := decodeDataKey(id, v)
	if err != nil {
		return DataKey{}, false, fmt.Errorf("data key %s of %s: %w", id, user, err)
	}
	return k, true, nil
}

// DataKeys returns every sealed data key of the user, in id order (which
// is creation order for UUIDv7 ids).
func (s *Store) DataKeys(ctx context.Context, user string) ([]DataKey, error) {
	exit, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer exit()
	lo := userKey(user, tagDataKey, nil)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return nil, fmt.Errorf("keystore: data keys of %s: %w", user, err)
	}
	var out []DataKey
	for ok := it.First(); ok; ok = it.Next() {
		raw := it.Key()[len(lo):]
		if len(raw) != 16 {
			it.Close()
			return nil, fmt.Errorf("%w: data key id of %d bytes", ErrCorrupt, len(raw))
		}
		k, err := decodeDataKey(uuid.UUID(raw), it.Value())
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("data keys of %s: %w", user, err)
		}
		out = append(out, k)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("keystore: data keys of %s: %w", user, err)
	}
	return out, nil
}

// DeleteDataKeys deletes sealed data keys and compacts them out of the
// store's files. Every record sealed under them becomes unreadable.
func (s *Store) DeleteDataKeys(ctx context.Context, user string, ids ...uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	if err := checkUser(user); err != nil {
		return err
	}
	exit, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer exit()
	keys := make([][]byte, 0, len(ids))
	b := s.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		k := userKey(user, tagDataKey, id[:])
		keys = append(keys, k)
		if err := b.Delete(k, nil); err != nil {
			return fmt.Errorf("keystore: delete data key: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("keystore: delete data key: %w", err)
	}
	slices.SortFunc(keys, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
	return s.compact(ctx, keys[0], prefixEnd(keys[len(keys)-1]))
}

// DeleteUser deletes everything the store holds of user (public key,
// wrapped identities, data keys) and compacts it out of the store's files:
// the user's archive and offline records become unreadable for good.
func (s *Store) DeleteUser(ctx context.Context, user string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	exit, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer exit()
	lo := userPrefix(user)
	hi := prefixEnd(lo)
	if err := s.db.DeleteRange(lo, hi, pebble.Sync); err != nil {
		return fmt.Errorf("keystore: delete user: %w", err)
	}
	return s.compact(ctx, lo, hi)
}

// compact pushes a deleted range through every level, so that the values
// and their tombstones are dropped from the tables (and the memtable's WAL
// retired) now. Pebble deletes the replaced files through shredFS.
func (s *Store) compact(ctx context.Context, lo, hi []byte) error {
	if err := s.db.Compact(ctx, lo, hi, false); err != nil {
		return fmt.Errorf("keystore: compact deleted keys: %w", err)
	}
	return nil
}

func (s *Store) get(ctx context.Context, key []byte) ([]byte, bool, error) {
	exit, err := s.enter(ctx)
	if err != nil {
		return nil, false, err
	}
	defer exit()
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("keystore: get: %w", err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

func (s *Store) set(ctx context.Context, key, value []byte, opts *pebble.WriteOptions) error {
	exit, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer exit()
	if err := s.db.Set(key, value, opts); err != nil {
		return fmt.Errorf("keystore: set: %w", err)
	}
	return nil
}

const dataKeyV1 = 1

// encodeDataKey is version(1) ‖ kind length(1) ‖ kind ‖ created unix
// nanoseconds(8) ‖ uses uvarint ‖ sealed blob.
func encodeDataKey(k DataKey) []byte {
	v := make([]byte, 0, 2+len(k.Kind)+8+binary.MaxVarintLen64+len(k.Sealed.Blob))
	v = append(v, dataKeyV1, byte(len(k.Kind)))
	v = append(v, k.Kind...)
	v = binary.BigEndian.AppendUint64(v, uint64(k.Created.UnixNano()))
	v = binary.AppendUvarint(v, uint64(max(k.Uses, 0)))
	return append(v, k.Sealed.Blob...)
}

func decodeDataKey(id uuid.UUID, v []byte) (DataKey, error) {
	if len(v) < 2 || v[0] != dataKeyV1 {
		return DataKey{}, ErrCorrupt
	}
	n := int(v[1])
	if len(v) < 2+n+8 {
		return DataKey{}, ErrCorrupt
	}
	k := DataKey{Kind: envelope.Kind(v[2 : 2+n])}
	rest := v[2+n:]
	k.Created = time.Unix(0, int64(binary.BigEndian.Uint64(rest[:8]))).UTC()
	uses, m := binary.Uvarint(rest[8:])
	if m <= 0 {
		return DataKey{}, ErrCorrupt
	}
	k.Uses = int(uses)
	k.Sealed = envelope.SealedDataKey{ID: id, Blob: append([]byte(nil), rest[8+m:]...)}
	return k, nil
}

// prefixEnd is the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// quietLogger keeps Pebble's informational chatter out of the server log;
// errors surface through the returned errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
