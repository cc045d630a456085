package projections

import (
	"context"
	"fmt"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// AccountsName is the name of the accounts projection.
const AccountsName = "accounts"

// Accounts is the read model of which accounts exist, for listing them
// (`verlauf user list`, the admin socket). One key per active account, its
// canonical bare JID; the value is empty. Checking a single account does
// not need it: the account's own stream is short and authoritative.
type Accounts struct {
	db *DB
}

// NewAccounts returns the accounts projection kept in db.
func NewAccounts(db *DB) *Accounts { return &Accounts{db: db} }

// Name implements Projection.
func (a *Accounts) Name() string { return AccountsName }

// Checkpoint implements Projection.
func (a *Accounts) Checkpoint(context.Context) (eventstore.Position, error) {
	return a.db.Checkpoint(AccountsName)
}

// Reset implements Projection.
func (a *Accounts) Reset(context.Context) error { return a.db.Reset(AccountsName) }

// Apply implements Projection. The key comes from the stream name, not the
// event body, so that registration and deletion agree on it.
func (a *Accounts) Apply(_ context.Context, evs []eventstore.RecordedEvent) error {
	return a.db.Apply(AccountsName, evs, func(t *Txn, ev eventstore.RecordedEvent) error {
		var write func(*Txn, []byte) error
		switch ev.Type {
		case domain.TypeAccountRegistered:
			write = func(t *Txn, k []byte) error { return t.Set(k, nil) }
		case domain.TypeAccountDeleted:
			write = func(t *Txn, k []byte) error { return t.Delete(k) }
		default:
			return nil
		}
		concern, user, err := domain.SplitStream(ev.Stream)
		if err != nil {
			return fmt.Errorf("projections: accounts: %w", err)
		}
		if concern != domain.ConcernAccount {
			return fmt.Errorf("projections: accounts: %s event on stream %q", ev.Type, ev.Stream)
		}
		return write(t, []byte(user.String()))
	})
}

// List returns the canonical bare JIDs of the active accounts, sorted by
// their bytes.
func (a *Accounts) List(context.Context) ([]string, error) {
	var out []string
	err := a.db.Scan(AccountsName, nil, func(k, _ []byte) bool {
		out = append(out, string(k))
		return true
	})
	return out, err
}
