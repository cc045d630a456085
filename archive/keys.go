package archive

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
	"verlauf.im/verlauf/eventstore/keystore"
)

// Keys is the lifecycle of users' archive keys: provisioned at
// registration, unlocked at each login and held in memory while the user
// has a session, re-wrapped at a password change, shredded at deletion.
// It is safe for concurrent use.
//
// Lock order: Keys.mu, then unlocked.mu, then unlocked.dkMu.
type Keys struct {
	store *keystore.Store
	rand  io.Reader

	mu   sync.Mutex
	open map[string]*unlocked          // users with at least one session
	pubs map[string]envelope.PublicKey // public keys read so far
	// forget is called (without mu) when a user's keys are replaced or
	// deleted, so that holders of derived state (the writers' data keys)
	// drop it.
	forget []func(user string)

	// resealMu serializes Reseal (interim.go); never held with mu.
	resealMu sync.Mutex
}

// unlocked is one user's identity in memory.
type unlocked struct {
	// mu is held shared while the identity or a data key is used, and
	// exclusively to wipe them, so nothing is wiped under a reader.
	mu       sync.RWMutex
	id       *envelope.Identity
	wiped    bool
	sessions int // guarded by Keys.mu

	dkMu     sync.Mutex
	dataKeys map[uuid.UUID]*envelope.DataKey // opened data keys
}

// NewKeys returns the key lifecycle over store. rand is the source of key
// material (nil: crypto/rand.Reader).
func NewKeys(store *keystore.Store, rand io.Reader) *Keys {
	if rand == nil {
		rand = cryptoRand
	}
	return &Keys{store: store, rand: rand, open: map[string]*unlocked{}, pubs: map[string]envelope.PublicKey{}}
}

var cryptoRand = rand.Reader

func (k *Keys) onForget(fn func(user string)) {
	k.mu.Lock()
	k.forget = append(k.forget, fn)
	k.mu.Unlock()
}

func bare(user jid.JID) (string, error) {
	if user.Localpart() == "" {
		return "", fmt.Errorf("%w: %q is not an account JID", ErrInvalid, user)
	}
	return user.Bare().String(), nil
}

// Provision creates the user's identity at registration: a new key pair
// and index key, wrapped once per SCRAM hash under clientKeys (hash name →
// ClientKey, as accounts.Credentials carries them), stored with the public
// key. The identity is wiped at once; the user unlocks it at login.
func (k *Keys) Provision(ctx context.Context, user jid.JID, clientKeys map[string][]byte) error {
	u, err := bare(user)
	if err != nil {
		return err
	}
	if _, ok, err := k.store.PublicKey(ctx, u); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w: %s", ErrProvisioned, u)
	}
	return k.newIdentity(ctx, u, clientKeys)
}

// newIdentity draws, wraps and stores a fresh identity, replacing any.
func (k *Keys) newIdentity(ctx context.Context, u string, clientKeys map[string][]byte) error {
	if len(clientKeys) == 0 {
		return fmt.Errorf("%w: no client keys", ErrInvalid)
	}
	id, pub, err := envelope.NewIdentity(k.rand)
	if err != nil {
		return err
	}
	defer id.Wipe()
	wraps, err := k.wrapAll(id, u, clientKeys)
	if err != nil {
		return err
	}
	if err := k.store.PutIdentity(ctx, u, pub, wraps); err != nil {
		return err
	}
	k.mu.Lock()
	k.pubs[u] = pub
	k.mu.Unlock()
	return nil
}

func (k *Keys) wrapAll(id *envelope.Identity, u string, clientKeys map[string][]byte) ([]envelope.WrappedIdentity, error) {
	hashes := make([]string, 0, len(clientKeys))
	for h := range clientKeys {
		hashes = append(hashes, h)
	}
	slices.Sort(hashes)
	wraps := make([]envelope.WrappedIdentity, 0, len(hashes))
	for _, h := range hashes {
		w, err := envelope.Wrap(k.rand, id, u, h, clientKeys[h])
		if err != nil {
			return nil, fmt.Errorf("archive: wrap identity of %s (%s): %w", u, h, err)
		}
		wraps = append(wraps, w)
	}
	return wraps, nil
}

// Unlock opens the user's identity with the ClientKey of a successful login
// (SCRAM: ClientProof XOR ClientSignature; PLAIN: ClientKeyFromPassword)
// and holds it in memory for the session. Each successful Unlock counts one
// session; Release ends one. The unwrapped identity's public key is checked
// against the stored one (ErrPublicKeyMismatch).
//
// For an imported account whose identity is still wrapped under an
// interim key for this hash (ProvisionInterim), the ClientKey does not
// open the wrap: Unlock then reseals that hash (Reseal) and opens the
// identity under the new wrap. Front ends should still call Reseal first
// with every ClientKey the login gave (see Reseal).
func (k *Keys) Unlock(ctx context.Context, user jid.JID, hash string, clientKey []byte) error {
	u, err := bare(user)
	if err != nil {
		return err
	}
	id, err := k.unwrap(ctx, u, hash, clientKey)
	if errors.Is(err, ErrWrongKey) {
		ok, rerr := k.Reseal(ctx, user, map[string][]byte{hash: clientKey})
		switch {
		case rerr != nil:
			return rerr
		case ok:
			id, err = k.unwrap(ctx, u, hash, clientKey)
		}
	}
	if err != nil {
		return err
	}
	pub, ok, err := k.store.PublicKey(ctx, u)
	if err != nil || !ok {
		id.Wipe()
		if err == nil {
			err = fmt.Errorf("%w: no public key for %s", ErrNoKeys, u)
		}
		return err
	}
	if pub != id.PublicKey() {
		id.Wipe()
		return fmt.Errorf("%w: %s", ErrPublicKeyMismatch, u)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pubs[u] = pub
	if cur := k.open[u]; cur != nil {
		// Another session holds the same identity already.
		id.Wipe()
		cur.sessions++
		return nil
	}
	k.open[u] = &unlocked{id: id, sessions: 1, dataKeys: map[uuid.UUID]*envelope.DataKey{}}
	return nil
}

// unwrap opens the stored wrap of hash with clientKey.
func (k *Keys) unwrap(ctx context.Context, u, hash string, clientKey []byte) (*envelope.Identity, error) {
	w, ok, err := k.store.WrappedIdentity(ctx, u, hash)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no %s wrap for %s", ErrNoKeys, hash, u)
	}
	id, err := envelope.Unwrap(w, u, clientKey)
	if errors.Is(err, envelope.ErrAuth) {
		return nil, fmt.Errorf("%w: %w", ErrWrongKey, err)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: unlock %s: %w", u, err)
	}
	return id, nil
}

// Release ends one session of user. When the last one ends, the identity
// and every data key opened with it are wiped.
func (k *Keys) Release(user jid.JID) {
	u := user.Bare().String()
	k.mu.Lock()
	cur := k.open[u]
	if cur == nil {
		k.mu.Unlock()
		return
	}
	cur.sessions--
	if cur.sessions > 0 {
		k.mu.Unlock()
		return
	}
	delete(k.open, u)
	k.mu.Unlock()
	cur.wipe()
}

func (u *unlocked) wipe() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.id.Wipe()
	u.dkMu.Lock()
	for _, dk := range u.dataKeys {
		dk.Wipe()
	}
	clear(u.dataKeys)
	u.dkMu.Unlock()
	u.wiped = true
}

// Unlocked reports whether user has an unlocked session.
func (k *Keys) Unlocked(user jid.JID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.open[user.Bare().String()] != nil
}

// RewrapResult says what a password change did to the archive.
type RewrapResult int

const (
	// Rewrapped: the identity was wrapped under the new password; all
	// history stays readable.
	Rewrapped RewrapResult = iota + 1
	// Replaced: the old identity could not be opened (an administrator's
	// reset, with the user offline), so a new one was made and the old
	// data keys deleted. History and queued messages sealed before are
	// lost for good.
	Replaced
)

// Rewrap follows a password change. If the user has an unlocked session,
// or oldClientKeys (hash → ClientKey of the old password, if the caller
// still has it) opens the stored identity, the identity is wrapped again
// under newClientKeys and nothing else changes. Otherwise (an
// administrator's reset while the user is offline) nobody can open the
// old identity any more: a new one replaces it, the old data keys are
// deleted, and the result is Replaced. An imported account still under
// interim keys (ProvisionInterim) is opened with them instead, and its
// interim keys end with the new wraps.
func (k *Keys) Rewrap(ctx context.Context, user jid.JID, oldClientKeys, newClientKeys map[string][]byte) (RewrapResult, error) {
	u, err := bare(user)
	if err != nil {
		return 0, err
	}
	if len(newClientKeys) == 0 {
		return 0, fmt.Errorf("%w: no client keys", ErrInvalid)
	}
	err = k.withIdentity(u, func(id *envelope.Identity) error {
		return k.rewrap(ctx, u, id, newClientKeys)
	})
	if err == nil {
		return Rewrapped, nil
	}
	if !errors.Is(err, ErrLocked) {
		return 0, err
	}
	for hash, ck := range oldClientKeys {
		w, ok, err := k.store.WrappedIdentity(ctx, u, hash)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		id, err := envelope.Unwrap(w, u, ck)
		if err != nil {
			continue
		}
		pub, _, err := k.store.PublicKey(ctx, u)
		if err != nil || pub != id.PublicKey() {
			id.Wipe()
			continue
		}
		err = k.rewrap(ctx, u, id, newClientKeys)
		id.Wipe()
		if err != nil {
			return 0, err
		}
		return Rewrapped, nil
	}
	// An imported account nobody has logged in to yet: the server holds
	// the interim keys, so the history survives the reset.
	if in, ok, err := k.store.Interim(ctx, u); err != nil {
		return 0, err
	} else if ok {
		id, err := k.openInterim(ctx, u, in)
		if err != nil {
			return 0, err
		}
		err = k.rewrap(ctx, u, id, newClientKeys) // PutIdentity ends the interim keys
		id.Wipe()
		if err != nil {
			return 0, err
		}
		return Rewrapped, nil
	}
	old, err := k.store.DataKeys(ctx, u)
	if err != nil {
		return 0, err
	}
	if err := k.newIdentity(ctx, u, newClientKeys); err != nil {
		return 0, err
	}
	ids := make([]uuid.UUID, 0, len(old))
	for _, dk := range old {
		ids = append(ids, dk.Sealed.ID)
	}
	if err := k.store.DeleteDataKeys(ctx, u, ids...); err != nil {
		return 0, err
	}
	k.notifyForget(u)
	return Replaced, nil
}

func (k *Keys) rewrap(ctx context.Context, u string, id *envelope.Identity, clientKeys map[string][]byte) error {
	wraps, err := k.wrapAll(id, u, clientKeys)
	if err != nil {
		return err
	}
	return k.store.PutIdentity(ctx, u, id.PublicKey(), wraps)
}

// Shred deletes every key of user (account deletion): the identity in
// memory is wiped and the key store forgets the wraps and data keys, so
// every archived and queued record of the user is unreadable for good.
func (k *Keys) Shred(ctx context.Context, user jid.JID) error {
	u, err := bare(user)
	if err != nil {
		return err
	}
	k.mu.Lock()
	cur := k.open[u]
	delete(k.open, u)
	delete(k.pubs, u)
	k.mu.Unlock()
	if cur != nil {
		cur.wipe()
	}
	k.notifyForget(u)
	return k.store.DeleteUser(ctx, u)
}

func (k *Keys) notifyForget(u string) {
	k.mu.Lock()
	fns := slices.Clone(k.forget)
	delete(k.pubs, u)
	k.mu.Unlock()
	for _, fn := range fns {
		fn(u)
	}
}

// publicKey returns the user's public key, from memory when it was read
// before.
func (k *Keys) publicKey(ctx context.Context, u string) (envelope.PublicKey, error) {
	k.mu.Lock()
	pub, ok := k.pubs[u]
	k.mu.Unlock()
	if ok {
		return pub, nil
	}
	pub, ok, err := k.store.PublicKey(ctx, u)
	if err != nil {
		return pub, err
	}
	if !ok {
		return pub, fmt.Errorf("%w: %s", ErrNoKeys, u)
	}
	k.mu.Lock()
	k.pubs[u] = pub
	k.mu.Unlock()
	return pub, nil
}

// session returns the user's unlocked state held shared, and the function
// that lets it go; ErrLocked if the user has no session.
func (k *Keys) session(u string) (*unlocked, func(), error) {
	k.mu.Lock()
	cur := k.open[u]
	k.mu.Unlock()
	if cur == nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrLocked, u)
	}
	cur.mu.RLock()
	if cur.wiped {
		cur.mu.RUnlock()
		return nil, nil, fmt.Errorf("%w: %s", ErrLocked, u)
	}
	return cur, cur.mu.RUnlock, nil
}

func (k *Keys) withIdentity(u string, fn func(*envelope.Identity) error) error {
	cur, done, err := k.session(u)
	if err != nil {
		return err
	}
	defer done()
	return fn(cur.id)
}

// blindIndex returns the partner's term if the user is unlocked, nil if
// not.
func (k *Keys) blindIndex(u, partner string) ([]byte, error) {
	var term []byte
	err := k.withIdentity(u, func(id *envelope.Identity) error {
		t, err := id.BlindIndex(partner)
		if err != nil {
			return err
		}
		term = t[:]
		return nil
	})
	if errors.Is(err, ErrLocked) {
		return nil, nil
	}
	return term, err
}

// dataKey returns the opened data key id of the session's user, opening it
// from the key store on first use; ErrKeyGone if the store no longer has
// it. The caller holds the session (cur.mu shared).
func (k *Keys) dataKey(ctx context.Context, cur *unlocked, u string, id uuid.UUID) (*envelope.DataKey, error) {
	cur.dkMu.Lock()
	dk := cur.dataKeys[id]
	cur.dkMu.Unlock()
	if dk != nil {
		return dk, nil
	}
	sk, ok, err := k.store.DataKey(ctx, u, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrKeyGone, id)
	}
	dk, err = cur.id.OpenDataKey(u, sk.Sealed)
	if err != nil {
		return nil, fmt.Errorf("archive: data key %s: %w", id, err)
	}
	cur.dkMu.Lock()
	if prev := cur.dataKeys[id]; prev != nil {
		dk.Wipe()
		dk = prev
	} else {
		cur.dataKeys[id] = dk
	}
	cur.dkMu.Unlock()
	return dk, nil
}

// dropDataKeys forgets opened data keys that were deleted from the store.
func (k *Keys) dropDataKeys(u string, ids []uuid.UUID) {
	if len(ids) == 0 {
		return
	}
	k.mu.Lock()
	cur := k.open[u]
	k.mu.Unlock()
	if cur == nil {
		return
	}
	cur.mu.Lock()
	defer cur.mu.Unlock()
	cur.dkMu.Lock()
	defer cur.dkMu.Unlock()
	for _, id := range ids {
		if dk := cur.dataKeys[id]; dk != nil {
			dk.Wipe()
			delete(cur.dataKeys, id)
		}
	}
}

// ClientKeyFromPassword derives the SCRAM ClientKey of password for a
// stored verifier: what a PLAIN login passes to Unlock, since PLAIN has no
// ClientProof to recover it from. It costs one PBKDF2 at the verifier's
// iteration count. The caller checks the password first (accounts'
// VerifyPassword) and wipes the key after use.
func ClientKeyFromPassword(v domain.SCRAMVerifier, password string) ([]byte, error) {
	sp, err := domain.SaltedPassword(v.Hash, password, v.Salt, v.Iterations)
	if err != nil {
		return nil, fmt.Errorf("archive: client key: %w", err)
	}
	defer clear(sp)
	ck, err := domain.ClientKey(v.Hash, sp)
	if err != nil {
		return nil, fmt.Errorf("archive: client key: %w", err)
	}
	return ck, nil
}
