package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/keystore"
	"verlauf.im/verlauf/projections"
)

// Defaults of Config.
const (
	// DefaultOfflineLimit bounds a user's offline queue.
	DefaultOfflineLimit = 1000
	// DefaultPageSize is the page of a MAM query without max.
	DefaultPageSize = 50
	// DefaultMaxPageSize caps max of a MAM query.
	DefaultMaxPageSize = 250
)

// Waiter waits for a projection to reach a log position;
// *projections.Runner implements it.
type Waiter interface {
	WaitFor(ctx context.Context, name string, pos eventstore.Position) error
}

// Config configures a Service. Store, KeyStore and Index are required.
type Config struct {
	// Store is the event log (wrapped by the upcaster in production).
	Store eventstore.Store
	// KeyStore is the mutable key store beside the log.
	KeyStore *keystore.Store
	// Index is the MAM index projection.
	Index *projections.Archive
	// Waiter, if set, makes a query wait until the index holds this
	// node's last write to the user's archive (read your own writes).
	Waiter Waiter
	// Rand is the source of keys and nonces (crypto/rand.Reader).
	Rand io.Reader
	// Clock stamps events and queued messages (domain.SystemClock).
	Clock domain.Clock
	// Rotation says when a data key is replaced
	// (envelope.DefaultRotation).
	Rotation envelope.RotationPolicy
	// OfflineLimit bounds each user's offline queue (DefaultOfflineLimit).
	OfflineLimit int
	// PageSize and MaxPageSize are a query's default and largest page
	// (DefaultPageSize, DefaultMaxPageSize).
	PageSize, MaxPageSize int
	// DefaultMode is the archive mode of users who never set preferences
	// (domain.ArchiveNever: no history by default).
	DefaultMode domain.ArchiveMode
}

// Service is the archive and offline queue of every user. It is safe for
// concurrent use.
type Service struct {
	cfg  Config
	keys *Keys

	mu      sync.Mutex
	writers map[writerKey]*writer
	offline map[string]*offlineState
	written map[string]eventstore.Position // last archive append per user
	// gates hold, per user, a lock that archive writes take shared from
	// sealing to append and Forget takes exclusively, so that no record
	// is sealed under a key Forget is about to delete and appended after
	// Forget has looked.
	gates sync.Map // string → *sync.RWMutex

	prefs prefsCache
}

func (s *Service) gate(u string) *sync.RWMutex {
	g, _ := s.gates.LoadOrStore(u, new(sync.RWMutex))
	return g.(*sync.RWMutex)
}

type writerKey struct {
	user string
	kind envelope.Kind
}

// writer is the data key currently sealing one user's records of one
// kind. It lives in memory only: a data key is sealed to the public key
// and cannot be opened again without the user's identity, so after a
// restart (or for a user who is offline) the first record simply starts a
// new key.
type writer struct {
	mu      sync.Mutex
	dk      *envelope.DataKey
	created time.Time
	uses    int
}

// New returns a service. Keys is the key lifecycle the service reads
// identities from; it must be over cfg.KeyStore.
func New(cfg Config, keys *Keys) (*Service, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("archive: no store")
	case cfg.KeyStore == nil || keys == nil:
		return nil, errors.New("archive: no key store")
	case cfg.Index == nil:
		return nil, errors.New("archive: no index")
	}
	if cfg.Rand == nil {
		cfg.Rand = cryptoRand
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	if cfg.Rotation == (envelope.RotationPolicy{}) {
		cfg.Rotation = envelope.DefaultRotation()
	}
	if cfg.OfflineLimit <= 0 {
		cfg.OfflineLimit = DefaultOfflineLimit
	}
	if cfg.MaxPageSize <= 0 {
		cfg.MaxPageSize = DefaultMaxPageSize
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = min(DefaultPageSize, cfg.MaxPageSize)
	}
	if !cfg.DefaultMode.Valid() {
		cfg.DefaultMode = domain.ArchiveNever
	}
	s := &Service{
		cfg:     cfg,
		keys:    keys,
		writers: map[writerKey]*writer{},
		offline: map[string]*offlineState{},
		written: map[string]eventstore.Position{},
		prefs:   prefsCache{m: map[string]domain.ArchivePrefs{}},
	}
	keys.onForget(s.forget)
	return s, nil
}

// Keys returns the key lifecycle the service uses.
func (s *Service) Keys() *Keys { return s.keys }

// forget drops what the service holds for a user whose keys were replaced
// or deleted: writers sealing to the old public key, the offline state.
func (s *Service) forget(u string) {
	s.mu.Lock()
	var ws []*writer
	for k, w := range s.writers {
		if k.user == u {
			ws = append(ws, w)
			delete(s.writers, k)
		}
	}
	delete(s.offline, u)
	s.mu.Unlock()
	for _, w := range ws {
		w.mu.Lock()
		if w.dk != nil {
			w.dk.Wipe()
			w.dk = nil
		}
		w.mu.Unlock()
	}
}

// Close records the use counts of the current data keys. The service must
// not be used after.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	ws := make(map[writerKey]*writer, len(s.writers))
	for k, w := range s.writers {
		ws[k] = w
	}
	s.mu.Unlock()
	var errs []error
	for k, w := range ws {
		w.mu.Lock()
		if w.dk != nil {
			errs = append(errs, s.cfg.KeyStore.SetUses(ctx, k.user, w.dk.ID(), w.uses))
			w.dk.Wipe()
			w.dk = nil
		}
		w.mu.Unlock()
	}
	return errors.Join(errs...)
}

// NewID returns a fresh archive id (UUIDv7). The router assigns it before
// delivery, so the delivered copy already carries <stanza-id>, and passes
// it to StoreWithID.
func (s *Service) NewID() (uuid.UUID, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, fmt.Errorf("archive: new id: %w", err)
	}
	return id, nil
}

// Store archives one message of user's conversation with partner and
// returns its archive id. See StoreWithID.
func (s *Service) Store(ctx context.Context, user, partner jid.JID, stanza []byte, dir domain.Direction, at time.Time) (uuid.UUID, error) {
	id, err := s.NewID()
	if err != nil {
		return uuid.Nil, err
	}
	return id, s.StoreWithID(ctx, id, user, partner, stanza, dir, at)
}

// Entry is one message to archive with StoreMany.
type Entry struct {
	// ID is the archive id; uuid.Nil draws one.
	ID        uuid.UUID
	Partner   jid.JID
	Direction domain.Direction
	At        time.Time
	Stanza    []byte
}

// StoreWithID archives one message under an archive id from NewID. The
// stanza, the partner's bare JID, the direction and at are sealed under
// the user's current archive data key, which is sealed to the user's
// public key: the user need not be online. If the user is unlocked, the
// event also carries the partner's blind index term; otherwise the message
// is indexed at the next login (IndexPending). It returns once the event
// is durable in the log.
//
// The event is appended with eventstore.Any: the archive stream is
// append-only and has no invariant to protect (ids are unique by
// construction, the index orders by id, not by revision), so there is no
// aggregate to load and concurrent writers never conflict.
func (s *Service) StoreWithID(ctx context.Context, id uuid.UUID, user, partner jid.JID, stanza []byte, dir domain.Direction, at time.Time) error {
	_, err := s.StoreMany(ctx, user, Entry{ID: id, Partner: partner, Direction: dir, At: at, Stanza: stanza})
	return err
}

// StoreMany archives several messages of one user in one append (an
// import, or a burst): all are durable or none. It returns their ids.
func (s *Service) StoreMany(ctx context.Context, user jid.JID, entries ...Entry) ([]uuid.UUID, error) {
	u, err := bare(user)
	if err != nil {
		return nil, err
	}
	g := s.gate(u)
	g.RLock()
	defer g.RUnlock()
	evs := make([]domain.Event, 0, len(entries))
	ids := make([]uuid.UUID, 0, len(entries))
	for _, e := range entries {
		ev, id, err := s.storedEvent(ctx, u, e)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
		ids = append(ids, id)
	}
	if len(evs) == 0 {
		return nil, nil
	}
	res, err := s.cfg.Store.Append(ctx, domain.ArchiveStream(user), eventstore.Any(), evs...)
	if err != nil {
		return nil, fmt.Errorf("archive: store for %s: %w", u, err)
	}
	s.noteWrite(u, res.Position)
	return ids, nil
}

// Copy is one party's copy of a message, for StoreCopies.
type Copy struct {
	User  jid.JID
	Entry Entry // its ID must be set
}

// StoreCopies archives the copies of one message that its parties keep,
// each in its owner's archive under the owner's keys, in one append: all
// are durable or none is, and the message takes one place in the group
// commit instead of one per party. Each user may appear once.
func (s *Service) StoreCopies(ctx context.Context, copies ...Copy) error {
	users := make([]string, len(copies))
	for i, c := range copies {
		u, err := bare(c.User)
		if err != nil {
			return err
		}
		if c.Entry.ID == uuid.Nil {
			return fmt.Errorf("%w: copy for %s without an archive id", ErrInvalid, u)
		}
		users[i] = u
	}
	// The gates in one order, so that two messages between the same two
	// users, going opposite ways, cannot each hold one and wait for the
	// other behind a writer.
	order := slices.Clone(users)
	slices.Sort(order)
	for i, u := range order {
		if i > 0 && order[i-1] == u {
			return fmt.Errorf("%w: two copies for %s", ErrInvalid, u)
		}
		g := s.gate(u)
		g.RLock()
		defer g.RUnlock()
	}
	parts := make([]eventstore.StreamAppend, len(copies))
	for i, c := range copies {
		ev, _, err := s.storedEvent(ctx, users[i], c.Entry)
		if err != nil {
			return err
		}
		parts[i] = eventstore.StreamAppend{Stream: domain.ArchiveStream(c.User), Expected: eventstore.Any(), Events: []domain.Event{ev}}
	}
	res, err := s.cfg.Store.AppendMulti(ctx, parts...)
	if err != nil {
		return fmt.Errorf("archive: store for %s: %w", strings.Join(users, ", "), err)
	}
	for i, u := range users {
		s.noteWrite(u, res[i].Position)
	}
	return nil
}

// storedEvent seals e for u (a canonical bare JID) into an
// archive.message_stored event, drawing an id if e has none.
func (s *Service) storedEvent(ctx context.Context, u string, e Entry) (domain.Event, uuid.UUID, error) {
	id := e.ID
	if id == uuid.Nil {
		var err error
		if id, err = s.NewID(); err != nil {
			return domain.Event{}, uuid.Nil, err
		}
	}
	if id.Version() != 7 {
		return domain.Event{}, uuid.Nil, fmt.Errorf("%w: archive id %s is not a UUIDv7", ErrInvalid, id)
	}
	if !e.Direction.Valid() {
		return domain.Event{}, uuid.Nil, fmt.Errorf("%w: direction %d", ErrInvalid, e.Direction)
	}
	if e.Partner.Domainpart() == "" {
		return domain.Event{}, uuid.Nil, fmt.Errorf("%w: no partner", ErrInvalid)
	}
	partner := e.Partner.Bare().String()
	plain := domain.SealedMessage{Partner: partner, Direction: e.Direction, At: e.At.UTC(), Stanza: e.Stanza}.Encode()
	sealed, keyID, err := s.seal(ctx, u, envelope.KindArchive, id, plain)
	clear(plain)
	if err != nil {
		return domain.Event{}, uuid.Nil, err
	}
	term, err := s.keys.blindIndex(u, partner)
	if err != nil {
		return domain.Event{}, uuid.Nil, err
	}
	ev, err := domain.NewEvent(s.cfg.Clock, domain.ArchiveMessageStored{ArchiveID: id, KeyID: keyID, Sealed: sealed, Index: term})
	if err != nil {
		return domain.Event{}, uuid.Nil, err
	}
	return ev, id, nil
}

func (s *Service) noteWrite(u string, pos eventstore.Position) {
	s.mu.Lock()
	if s.written[u].Less(pos) {
		s.written[u] = pos
	}
	s.mu.Unlock()
}

// WaitIndexed returns when the index holds everything this node has
// written to user's archive so far. Queries wait so by themselves; an
// import calls it so that it reports done only when what it wrote can be
// found (the index of a large import trails its appends by a minute).
func (s *Service) WaitIndexed(ctx context.Context, user jid.JID) error {
	u, err := bare(user)
	if err != nil {
		return err
	}
	return s.waitIndex(ctx, u)
}

// waitIndex waits until the index holds this node's last write for u.
func (s *Service) waitIndex(ctx context.Context, u string) error {
	if s.cfg.Waiter == nil {
		return nil
	}
	s.mu.Lock()
	pos, ok := s.written[u]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return s.cfg.Waiter.WaitFor(ctx, projections.ArchiveName, pos)
}

// seal seals plain as record id of kind under the user's current data key
// of that kind, starting a new key when there is none or the rotation
// policy says so.
func (s *Service) seal(ctx context.Context, u string, kind envelope.Kind, id uuid.UUID, plain []byte) ([]byte, uuid.UUID, error) {
	wk := writerKey{u, kind}
	s.mu.Lock()
	w := s.writers[wk]
	if w == nil {
		w = &writer{}
		s.writers[wk] = w
	}
	s.mu.Unlock()

	w.mu.Lock()
	defer w.mu.Unlock()
	now := s.cfg.Clock.Now()
	if w.dk == nil || s.cfg.Rotation.NeedsRotation(w.created, w.uses, now) {
		if err := s.rotate(ctx, u, kind, w, now); err != nil {
			return nil, uuid.Nil, err
		}
	}
	sealed, err := envelope.Seal(s.cfg.Rand, w.dk, envelope.AAD{User: u, Kind: kind, RecordID: id}, plain)
	if err != nil {
		return nil, uuid.Nil, fmt.Errorf("archive: seal for %s: %w", u, err)
	}
	w.uses++
	return sealed, w.dk.ID(), nil
}

// rotate starts a new data key for w: drawn, sealed to the public key and
// stored (synced) before it seals anything. The caller holds w.mu.
func (s *Service) rotate(ctx context.Context, u string, kind envelope.Kind, w *writer, now time.Time) error {
	pub, err := s.keys.publicKey(ctx, u)
	if err != nil {
		return err
	}
	kid, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("archive: new key id: %w", err)
	}
	dk, err := envelope.NewDataKey(s.cfg.Rand, kid)
	if err != nil {
		return err
	}
	sk, err := envelope.SealDataKey(pub, u, dk)
	if err != nil {
		dk.Wipe()
		return fmt.Errorf("archive: seal data key for %s: %w", u, err)
	}
	if err := s.cfg.KeyStore.PutDataKey(ctx, u, keystore.DataKey{Sealed: sk, Kind: kind, Created: now}); err != nil {
		dk.Wipe()
		return err
	}
	if w.dk != nil {
		// The count is bookkeeping; a failure to record it loses nothing.
		_ = s.cfg.KeyStore.SetUses(ctx, u, w.dk.ID(), w.uses)
		w.dk.Wipe()
	}
	w.dk, w.created, w.uses = dk, now, 0
	return nil
}

// retire ends the current data key of one kind for u, so that the next
// record starts a new one.
func (s *Service) retire(ctx context.Context, u string, kind envelope.Kind) {
	s.mu.Lock()
	w := s.writers[writerKey{u, kind}]
	s.mu.Unlock()
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dk != nil {
		_ = s.cfg.KeyStore.SetUses(ctx, u, w.dk.ID(), w.uses)
		w.dk.Wipe()
		w.dk = nil
	}
}

// currentKey is the id of the key currently sealing u's records of kind.
func (s *Service) currentKey(u string, kind envelope.Kind) uuid.UUID {
	s.mu.Lock()
	w := s.writers[writerKey{u, kind}]
	s.mu.Unlock()
	if w == nil {
		return uuid.Nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dk == nil {
		return uuid.Nil
	}
	return w.dk.ID()
}
