package domain

import (
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"
)

// Addresses are parsed and compared by mellium.im/xmpp/jid, which applies
// the PRECIS profiles of RFC 7622. verlauf never parses a JID by hand: two
// spellings of one address (case, width, compatibility characters) must map
// to one stream, one roster item and one archive, or a user's data would be
// split across names.
//
// Event bodies hold JIDs as their canonical strings, not as jid.JID, for two
// reasons: jid.JID has no JSON encoding, and a stored event must stay
// readable even if a later Unicode or PRECIS revision would reject a string
// that was valid when it was recorded. Commands take jid.JID, so everything
// entering the log has been validated once.

// ErrInvalidJID is wrapped by every error about a malformed address.
var ErrInvalidJID = errors.New("domain: invalid JID")

// ParseJID parses s as an XMPP address in canonical form. Errors wrap
// ErrInvalidJID so that front ends can map them to jid-malformed.
func ParseJID(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("%w: %q: %w", ErrInvalidJID, s, err)
	}
	// The canonical form must parse again to itself, or an address
	// accepted today would be read back from the log as another one, or
	// not at all: RFC 7622 drops one trailing dot, so "0.." becomes the
	// domain "0.", which then reads back as "0", and ".." becomes ".",
	// which does not parse.
	if again, err := jid.Parse(j.String()); err != nil || again.String() != j.String() {
		return jid.JID{}, fmt.Errorf("%w: %q: its canonical form %q does not parse to itself", ErrInvalidJID, s, j.String())
	}
	return j, nil
}

// ParseBareJID parses s and requires it to be a bare account address
// (localpart@domainpart, no resource): the shape of roster contacts and
// account names.
func ParseBareJID(s string) (jid.JID, error) {
	j, err := ParseJID(s)
	if err != nil {
		return jid.JID{}, err
	}
	if err := requireBare(j); err != nil {
		return jid.JID{}, err
	}
	return j, nil
}

// AccountJID builds the bare address of a local account from a username
// and the server's domain. The username goes through the localpart profile
// (UsernameCaseMapped), so "Alice" and "alice" are one account; the
// canonical result is what names the account's streams.
func AccountJID(username, domainpart string) (jid.JID, error) {
	if username == "" {
		return jid.JID{}, fmt.Errorf("%w: empty username", ErrInvalidJID)
	}
	j, err := jid.New(username, domainpart, "")
	if err != nil {
		return jid.JID{}, fmt.Errorf("%w: username %q at %q: %w", ErrInvalidJID, username, domainpart, err)
	}
	return j, nil
}

// requireBare rejects addresses that are not localpart@domainpart.
func requireBare(j jid.JID) error {
	if j.Localpart() == "" || j.Resourcepart() != "" {
		return fmt.Errorf("%w: %q is not a bare account JID", ErrInvalidJID, j.String())
	}
	return nil
}

// isZeroJID reports whether j was never set (the zero jid.JID has no
// domainpart, which no parsed JID lacks).
func isZeroJID(j jid.JID) bool { return j.Domainpart() == "" }

// Stream concerns. A stream name is "<concern>-<bare jid>": one stream per
// user and per concern, so that optimistic concurrency on one concern (a
// roster change) never conflicts with another (a new archived message), and
// so that a user's whole footprint is found by listing the concerns. The
// concern names contain no '-', so SplitStream can cut at the first one.
const (
	ConcernAccount   = "account"
	ConcernRoster    = "roster"
	ConcernArchive   = "archive"
	ConcernOffline   = "offline"
	ConcernPrefs     = "prefs"
	ConcernBlocklist = "blocklist"
	ConcernVCard     = "vcard"
	ConcernPrivate   = "private"
)

// Concerns lists every per-user stream concern, e.g. for a compliance
// export or for account deletion. It returns a fresh slice each call.
func Concerns() []string {
	return []string{
		ConcernAccount, ConcernRoster, ConcernArchive, ConcernOffline,
		ConcernPrefs, ConcernBlocklist, ConcernVCard, ConcernPrivate,
	}
}

// StreamName is "<concern>-<bare jid>". The resource of user, if any, is
// dropped: streams belong to accounts, not to sessions.
func StreamName(concern string, user jid.JID) string {
	return concern + "-" + user.Bare().String()
}

// AccountStream holds the account's registration, credentials and deletion.
func AccountStream(user jid.JID) string { return StreamName(ConcernAccount, user) }

// RosterStream holds the roster items and subscription states.
func RosterStream(user jid.JID) string { return StreamName(ConcernRoster, user) }

// ArchiveStream holds the sealed messages of the user's history (MAM).
func ArchiveStream(user jid.JID) string { return StreamName(ConcernArchive, user) }

// OfflineStream holds sealed messages waiting for the user to come online.
func OfflineStream(user jid.JID) string { return StreamName(ConcernOffline, user) }

// PrefsStream holds the archive preferences (XEP-0313 prefs).
func PrefsStream(user jid.JID) string { return StreamName(ConcernPrefs, user) }

// BlocklistStream holds the blocking list (XEP-0191).
func BlocklistStream(user jid.JID) string { return StreamName(ConcernBlocklist, user) }

// VCardStream holds the user's vCard (XEP-0054).
func VCardStream(user jid.JID) string { return StreamName(ConcernVCard, user) }

// PrivateStream holds private XML storage (XEP-0049).
func PrivateStream(user jid.JID) string { return StreamName(ConcernPrivate, user) }

// StreamConcern returns the concern prefix of a stream name ("" if it has
// none) without parsing the JID: SplitStream's PRECIS parse is the costly
// part, and handlers that see every event of the log filter on the concern
// first.
func StreamConcern(stream string) string {
	concern, _, ok := strings.Cut(stream, "-")
	if !ok {
		return ""
	}
	return concern
}

// SplitStream is the inverse of StreamName: it returns the concern and the
// bare JID a stream belongs to. Projections that consume the global log use
// it to route an event to the right user.
func SplitStream(stream string) (concern string, user jid.JID, err error) {
	concern, rest, ok := strings.Cut(stream, "-")
	if !ok || concern == "" {
		return "", jid.JID{}, fmt.Errorf("%w: stream %q has no concern prefix", ErrInvalidJID, stream)
	}
	user, err = ParseBareJID(rest)
	if err != nil {
		return "", jid.JID{}, fmt.Errorf("stream %q: %w", stream, err)
	}
	return concern, user, nil
}
