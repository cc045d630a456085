package c2s

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/xmppfront/sasl"
)

// StoreCredentials is the CredentialStore that reads accounts from the
// event store: it folds the account stream and hands SASL the current
// verifier.
type StoreCredentials struct {
	Store eventstore.Store
}

// accountAggregate folds an account stream.
var accountAggregate = eventstore.Aggregate[domain.Account]{
	Fold: func(a domain.Account, ev domain.Event) (domain.Account, error) {
		p, err := domain.Decode(ev)
		if err != nil {
			return a, err
		}
		return a.Apply(p), nil
	},
}

// Account loads the account of bare.
func (s StoreCredentials) Account(ctx context.Context, bare jid.JID) (domain.Account, error) {
	l, err := eventstore.Load(ctx, s.Store, domain.AccountStream(bare), accountAggregate)
	if err != nil {
		return domain.Account{}, fmt.Errorf("c2s: load account: %w", err)
	}
	return l.State, nil
}

// Credentials implements CredentialStore.
func (s StoreCredentials) Credentials(ctx context.Context, user jid.JID, h sasl.Hash) (sasl.Credentials, error) {
	a, err := s.Account(ctx, user)
	if err != nil {
		return sasl.Credentials{}, err
	}
	if !a.Active() {
		return sasl.Credentials{}, fmt.Errorf("%s: %w", user, sasl.ErrUnknownUser)
	}
	v, ok := a.Verifier(string(h))
	if !ok {
		// An account without a verifier for this hash cannot use the
		// mechanism; to the client that is a failed login.
		return sasl.Credentials{}, fmt.Errorf("%s has no %s verifier: %w", user, h, sasl.ErrUnknownUser)
	}
	return sasl.Credentials{Salt: v.Salt, Iterations: v.Iterations, StoredKey: v.StoredKey, ServerKey: v.ServerKey}, nil
}

// Exists reports whether bare is an active local account; it is the
// router's UserExists hook. A store failure counts as "exists", so a
// stanza is not bounced as if the user were unknown.
func (s StoreCredentials) Exists(ctx context.Context, bare jid.JID) bool {
	a, err := s.Account(ctx, bare)
	return err != nil || a.Active()
}
