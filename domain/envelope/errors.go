package envelope

import "errors"

// The errors below are matched with errors.Is. Every failure to open a
// stored blob wraps ErrCorrupt or ErrAuth, so a reader of the archive can
// report one bad record and carry on with the next (issue 4, "Bad input").
var (
	// ErrCorrupt is wrapped when a stored blob is malformed: too short, of
	// the wrong length, or of an unknown format version. It says nothing
	// about keys: the bytes could not even be parsed.
	ErrCorrupt = errors.New("envelope: corrupt blob")

	// ErrUnknownVersion is wrapped, together with ErrCorrupt, when a blob's
	// version byte is not one this build can read.
	ErrUnknownVersion = errors.New("envelope: unknown format version")

	// ErrAuth is wrapped when authenticated decryption fails: a wrong key
	// (wrong ClientKey, wrong identity, wrong data key), a blob moved to
	// another user, record or key id, or any modified byte. AEAD cannot tell
	// these apart, and telling an attacker which one it was would not help
	// the user.
	ErrAuth = errors.New("envelope: authentication failed")

	// ErrInvalid is wrapped when the caller passes an unusable argument:
	// an empty or full JID where a bare JID is required, an unknown SCRAM
	// hash, a ClientKey of the wrong length, a nil key or id.
	ErrInvalid = errors.New("envelope: invalid argument")

	// ErrWiped is wrapped when a key is used after Wipe. Using a zeroed key
	// would silently seal under a key anyone can compute, so it is refused.
	ErrWiped = errors.New("envelope: key used after Wipe")
)
