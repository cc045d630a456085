package archive

import "errors"

// Errors of the package, matched with errors.Is. Failures to open a record
// also wrap the envelope's errors (envelope.ErrAuth, envelope.ErrCorrupt).
var (
	// ErrLocked is returned when an operation needs the user's identity
	// (reading the archive or the offline queue, indexing) and the user
	// has no unlocked session.
	ErrLocked = errors.New("archive: user's keys are locked")
	// ErrNoKeys is returned for a user with no keys in the key store:
	// never provisioned, or shredded.
	ErrNoKeys = errors.New("archive: user has no keys")
	// ErrProvisioned is returned by Provision for a user who has keys.
	ErrProvisioned = errors.New("archive: user already has keys")
	// ErrWrongKey is returned by Unlock for a ClientKey that does not open
	// the wrapped identity (it also wraps envelope.ErrAuth).
	ErrWrongKey = errors.New("archive: client key does not open the identity")
	// ErrPublicKeyMismatch is returned by Unlock when the stored public key
	// is not the identity's: someone with write access to the key store
	// replaced it, to read what is sealed while the user is offline.
	ErrPublicKeyMismatch = errors.New("archive: stored public key does not match the identity")
	// ErrQueueFull is returned by Queue when the user's offline queue is at
	// its bound; the XMPP layer answers resource-constraint.
	ErrQueueFull = errors.New("archive: offline queue full")
	// ErrItemNotFound is returned by Query for an id (after, before, ids)
	// that is not in the user's archive; MAM answers item-not-found.
	ErrItemNotFound = errors.New("archive: no such archive id")
	// ErrKeyGone is the error of a record whose data key was deleted
	// (delivered offline messages, shredded history).
	ErrKeyGone = errors.New("archive: record's data key is gone")
	// ErrInvalid is wrapped for unusable arguments.
	ErrInvalid = errors.New("archive: invalid argument")
)
