package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// RosterName is the name of the roster projection in checkpoints and in
// Runner.WaitFor.
const RosterName = "roster"

// Roster is the read model of every user's roster: the items a roster get
// returns, the roster version (XEP-0237), the pending inbound subscription
// requests redelivered at login, and two small indexes that presence needs
// on every broadcast and every login: who is subscribed to the user's
// presence (subscription from/both) and whose presence the user is
// subscribed to (to/both). The indexes hold no value, so a broadcast scans
// keys only and decodes no item.
//
// Key layout inside the projection's key space, with user and contact the
// canonical bare JIDs (which never contain NUL):
//
//	i <user> 0 <contact>   item, JSON (the item and the Ver of its last change)
//	v <user>               roster version, 8 bytes big-endian
//	f <user> 0 <contact>   contact has a subscription from the user (from/both)
//	t <user> 0 <contact>   user has a subscription to the contact (to/both)
//	p <user> 0 <contact>   inbound subscription request waiting for an answer
type Roster struct {
	db *DB
}

// NewRoster returns the roster projection kept in db.
func NewRoster(db *DB) *Roster { return &Roster{db: db} }

// Name implements Projection.
func (r *Roster) Name() string { return RosterName }

// Checkpoint implements Projection.
func (r *Roster) Checkpoint(context.Context) (eventstore.Position, error) {
	return r.db.Checkpoint(RosterName)
}

// Reset implements Projection.
func (r *Roster) Reset(context.Context) error { return r.db.Reset(RosterName) }

const (
	rosterKindItem    = 'i'
	rosterKindVer     = 'v'
	rosterKindFrom    = 'f'
	rosterKindTo      = 't'
	rosterKindRequest = 'p'
)

func rosterUserPrefix(kind byte, user string) []byte {
	k := make([]byte, 0, 2+len(user))
	k = append(k, kind)
	k = append(k, user...)
	return append(k, 0)
}

func rosterKey(kind byte, user, contact string) []byte {
	return append(rosterUserPrefix(kind, user), contact...)
}

func rosterVerKey(user string) []byte { return append([]byte{rosterKindVer}, user...) }

// rosterStoredItem is an item as the projection keeps it: with the version of its
// last change, so that a later "changes since ver N" answer is a scan.
type rosterStoredItem struct {
	domain.RosterItem
	Ver uint64 `json:"ver"`
}

// Apply implements Projection. Every roster event carries a full snapshot
// of what it changes, so applying one twice is harmless.
func (r *Roster) Apply(_ context.Context, evs []eventstore.RecordedEvent) error {
	return r.db.Apply(RosterName, evs, func(tx *Txn, ev eventstore.RecordedEvent) error {
		if domain.StreamConcern(ev.Stream) != domain.ConcernRoster {
			return nil
		}
		user, p, ok, err := userEvent(ev)
		if err != nil {
			return fmt.Errorf("roster projection: %w", err)
		}
		if !ok {
			return nil
		}
		return applyRoster(tx, user, p)
	})
}

func applyRoster(tx *Txn, user string, p domain.Payload) error {
	switch e := p.(type) {
	case domain.RosterItemSet:
		v, err := json.Marshal(rosterStoredItem{RosterItem: e.RosterItem, Ver: e.Ver})
		if err != nil {
			return fmt.Errorf("roster projection: encode item: %w", err)
		}
		if err := tx.Set(rosterKey(rosterKindItem, user, e.JID), v); err != nil {
			return err
		}
		from := e.Subscription == domain.SubscriptionFrom || e.Subscription == domain.SubscriptionBoth
		to := e.Subscription == domain.SubscriptionTo || e.Subscription == domain.SubscriptionBoth
		if err := rosterSetFlag(tx, rosterKey(rosterKindFrom, user, e.JID), from); err != nil {
			return err
		}
		if err := rosterSetFlag(tx, rosterKey(rosterKindTo, user, e.JID), to); err != nil {
			return err
		}
		return tx.Set(rosterVerKey(user), binary.BigEndian.AppendUint64(nil, e.Ver))
	case domain.RosterItemRemoved:
		for _, kind := range []byte{rosterKindItem, rosterKindFrom, rosterKindTo} {
			if err := tx.Delete(rosterKey(kind, user, e.JID)); err != nil {
				return err
			}
		}
		return tx.Set(rosterVerKey(user), binary.BigEndian.AppendUint64(nil, e.Ver))
	case domain.RosterRequestReceived:
		return tx.Set(rosterKey(rosterKindRequest, user, e.JID), nil)
	case domain.RosterRequestCleared:
		return tx.Delete(rosterKey(rosterKindRequest, user, e.JID))
	}
	return nil
}

func rosterSetFlag(tx *Txn, key []byte, on bool) error {
	if on {
		return tx.Set(key, nil)
	}
	return tx.Delete(key)
}

// Items returns the user's roster sorted by contact JID, and its version.
func (r *Roster) Items(ctx context.Context, user jid.JID) ([]domain.RosterItem, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	u := user.Bare().String()
	var (
		items  []domain.RosterItem
		decErr error
	)
	err := r.db.Scan(RosterName, rosterUserPrefix(rosterKindItem, u), func(_, v []byte) bool {
		var it rosterStoredItem
		if decErr = json.Unmarshal(v, &it); decErr != nil {
			return false
		}
		items = append(items, it.RosterItem)
		return true
	})
	if err == nil && decErr != nil {
		err = fmt.Errorf("roster projection: decode item of %s: %w", u, decErr)
	}
	if err != nil {
		return nil, 0, err
	}
	ver, err := r.Version(ctx, user)
	return items, ver, err
}

// Item returns one item of the user's roster.
func (r *Roster) Item(ctx context.Context, user, contact jid.JID) (domain.RosterItem, bool, error) {
	if err := ctx.Err(); err != nil {
		return domain.RosterItem{}, false, err
	}
	v, ok, err := r.db.Get(RosterName, rosterKey(rosterKindItem, user.Bare().String(), contact.Bare().String()))
	if err != nil || !ok {
		return domain.RosterItem{}, false, err
	}
	var it rosterStoredItem
	if err := json.Unmarshal(v, &it); err != nil {
		return domain.RosterItem{}, false, fmt.Errorf("roster projection: decode item: %w", err)
	}
	return it.RosterItem, true, nil
}

// Version returns the user's roster version (0 for a roster never changed).
func (r *Roster) Version(ctx context.Context, user jid.JID) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	v, ok, err := r.db.Get(RosterName, rosterVerKey(user.Bare().String()))
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("roster projection: corrupt version of %s", user.Bare())
	}
	return binary.BigEndian.Uint64(v), nil
}

// Subscribers returns the bare JIDs subscribed to the user's presence
// (subscription from or both), sorted: where presence broadcasts go.
func (r *Roster) Subscribers(ctx context.Context, user jid.JID) ([]string, error) {
	return r.contacts(ctx, rosterKindFrom, user)
}

// Subscriptions returns the bare JIDs whose presence the user is subscribed
// to (subscription to or both), sorted: where probes go at login.
func (r *Roster) Subscriptions(ctx context.Context, user jid.JID) ([]string, error) {
	return r.contacts(ctx, rosterKindTo, user)
}

// IsSubscriber reports whether contact is subscribed to the user's presence
// (subscription from or both); it decides whether a probe is answered.
func (r *Roster) IsSubscriber(ctx context.Context, user, contact jid.JID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	_, ok, err := r.db.Get(RosterName, rosterKey(rosterKindFrom, user.Bare().String(), contact.Bare().String()))
	return ok, err
}

// PendingRequests returns the bare JIDs whose subscription requests wait
// for the user's answer, sorted; they are redelivered at login.
func (r *Roster) PendingRequests(ctx context.Context, user jid.JID) ([]string, error) {
	return r.contacts(ctx, rosterKindRequest, user)
}

func (r *Roster) contacts(ctx context.Context, kind byte, user jid.JID) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prefix := rosterUserPrefix(kind, user.Bare().String())
	var out []string
	err := r.db.Scan(RosterName, prefix, func(k, _ []byte) bool {
		out = append(out, string(bytes.TrimPrefix(k, prefix)))
		return true
	})
	return out, err
}
