package domain

import (
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
)

// AccountRegistered records the creation of a local account, stream
// AccountStream. Only SCRAM verifiers are recorded, never the password:
// the log is the source of truth and is copied into backups.
type AccountRegistered struct {
	// JID is the account's canonical bare JID.
	JID string `json:"jid"`
	// Verifiers holds one verifier per supported SCRAM hash.
	Verifiers []SCRAMVerifier `json:"verifiers"`
}

// EventType implements Payload.
func (AccountRegistered) EventType() string { return TypeAccountRegistered }

// EventSchemaVersion implements Payload.
func (AccountRegistered) EventSchemaVersion() int { return 1 }

// AccountPasswordChanged replaces all verifiers of the account. Old
// verifiers stay in the log; that is acceptable because a verifier only
// allows an offline guess at the old password, which is no longer valid.
type AccountPasswordChanged struct {
	Verifiers []SCRAMVerifier `json:"verifiers"`
}

// EventType implements Payload.
func (AccountPasswordChanged) EventType() string { return TypeAccountPasswordChanged }

// EventSchemaVersion implements Payload.
func (AccountPasswordChanged) EventSchemaVersion() int { return 1 }

// AccountDeleted closes the account for good. The user's other streams are
// made unreadable by crypto-shredding their keys, not by this event.
type AccountDeleted struct{}

// EventType implements Payload.
func (AccountDeleted) EventType() string { return TypeAccountDeleted }

// EventSchemaVersion implements Payload.
func (AccountDeleted) EventSchemaVersion() int { return 1 }

// Account errors, matched with errors.Is.
var (
	ErrAccountExists     = errors.New("domain: account already registered")
	ErrAccountNotFound   = errors.New("domain: account not registered")
	ErrAccountDeleted    = errors.New("domain: account deleted")
	ErrNoVerifiers       = errors.New("domain: no SCRAM verifiers")
	ErrDuplicateVerifier = errors.New("domain: two verifiers for one hash")
)

// Account is the state of one local account, folded from its stream. The
// zero value is an account that was never registered.
//
// Deleted is a tombstone: a deleted account rejects every command,
// including Register. A name is never handed to a second person, because
// contacts on other servers still hold subscriptions to it and would start
// sharing presence and messages with a stranger; and the old owner's
// history, although crypto-shredded, would sit under the new owner's
// streams. Reusing a name needs an operator decision outside these rules.
type Account struct {
	// JID is the canonical bare JID, set by registration.
	JID        string
	Registered bool
	Deleted    bool
	// Verifiers are the current SCRAM verifiers.
	Verifiers []SCRAMVerifier
}

// Verifier returns the current verifier for a SCRAM hash name.
func (a Account) Verifier(hashName string) (SCRAMVerifier, bool) {
	for _, v := range a.Verifiers {
		if v.Hash == hashName {
			return v, true
		}
	}
	return SCRAMVerifier{}, false
}

// Active reports whether the account exists and may log in.
func (a Account) Active() bool { return a.Registered && !a.Deleted }

// Register decides the registration of user with the given verifiers.
// user must be a bare JID with a localpart (build it with AccountJID so that
// the username is validated as a localpart).
func (a Account) Register(user jid.JID, verifiers []SCRAMVerifier) ([]Payload, error) {
	switch {
	case a.Deleted:
		return nil, fmt.Errorf("register %s: %w", a.JID, ErrAccountDeleted)
	case a.Registered:
		return nil, fmt.Errorf("register %s: %w", a.JID, ErrAccountExists)
	}
	if isZeroJID(user) {
		return nil, fmt.Errorf("register: %w: no JID", ErrInvalidJID)
	}
	if err := requireBare(user); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	if err := validateVerifiers(verifiers); err != nil {
		return nil, fmt.Errorf("register %s: %w", user, err)
	}
	return []Payload{AccountRegistered{JID: user.String(), Verifiers: cloneVerifiers(verifiers)}}, nil
}

// ChangePassword decides the replacement of the account's verifiers.
func (a Account) ChangePassword(verifiers []SCRAMVerifier) ([]Payload, error) {
	if err := a.requireActive("change password"); err != nil {
		return nil, err
	}
	if err := validateVerifiers(verifiers); err != nil {
		return nil, fmt.Errorf("change password %s: %w", a.JID, err)
	}
	return []Payload{AccountPasswordChanged{Verifiers: cloneVerifiers(verifiers)}}, nil
}

// Delete decides the deletion of the account.
func (a Account) Delete() ([]Payload, error) {
	if err := a.requireActive("delete"); err != nil {
		return nil, err
	}
	return []Payload{AccountDeleted{}}, nil
}

func (a Account) requireActive(op string) error {
	switch {
	case a.Deleted:
		return fmt.Errorf("%s %s: %w", op, a.JID, ErrAccountDeleted)
	case !a.Registered:
		return fmt.Errorf("%s: %w", op, ErrAccountNotFound)
	}
	return nil
}

// Apply is the account's fold function. Events of other concerns leave the
// state unchanged.
func (a Account) Apply(p Payload) Account {
	switch e := p.(type) {
	case AccountRegistered:
		a.JID = e.JID
		a.Registered = true
		a.Verifiers = cloneVerifiers(e.Verifiers)
	case AccountPasswordChanged:
		a.Verifiers = cloneVerifiers(e.Verifiers)
	case AccountDeleted:
		a.Deleted = true
		a.Verifiers = nil
	}
	return a
}

func validateVerifiers(vs []SCRAMVerifier) error {
	if len(vs) == 0 {
		return ErrNoVerifiers
	}
	seen := make(map[string]bool, len(vs))
	for _, v := range vs {
		if err := v.Validate(); err != nil {
			return err
		}
		if seen[v.Hash] {
			return fmt.Errorf("%w: %s", ErrDuplicateVerifier, v.Hash)
		}
		seen[v.Hash] = true
	}
	return nil
}

func cloneVerifiers(vs []SCRAMVerifier) []SCRAMVerifier {
	if vs == nil {
		return nil
	}
	out := make([]SCRAMVerifier, len(vs))
	copy(out, vs)
	return out
}
