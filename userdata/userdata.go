package userdata

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// Errors of the package, matched with errors.Is.
var (
	// ErrMalformed is wrapped by every refusal of an import file: bad XML,
	// a DTD, a limit exceeded, an element in the wrong place, a value the
	// rules refuse. The error is a *FileError that names the element and
	// the line.
	ErrMalformed = errors.New("userdata: malformed import file")
	// ErrExists is returned when an imported account exists already and
	// Options.MergeExisting is not set.
	ErrExists = errors.New("userdata: account exists")
	// ErrNoCredentials is returned for an imported user with neither a
	// password, nor SCRAM verifiers, nor Options.Password.
	ErrNoCredentials = errors.New("userdata: no credentials for new account")
	// ErrWrongPassword is returned when Options.Password does not match
	// the SCRAM verifiers of the file.
	ErrWrongPassword = errors.New("userdata: password does not match the file's verifiers")
	// ErrVerify is returned by Verify for a file whose content does not
	// match its manifest, or that has none.
	ErrVerify = errors.New("userdata: file does not match its manifest")
)

// Format is an export format.
type Format string

const (
	// XEP0227 is the Portable Import/Export Format (XEP-0227), with the
	// history as <archive xmlns='urn:xmpp:pie:0#mam'> (Prosody's layout).
	XEP0227 Format = "xep0227"
	// JSONLines is one JSON object per line.
	JSONLines Format = "jsonl"
)

// Archive is what the package needs of archive.Service.
type Archive interface {
	Query(ctx context.Context, user jid.JID, q archive.Query) (archive.Page, error)
	// Drain is used read-only: Export never calls Delivered. It retires
	// the current offline data key as a side effect (the next queued
	// message starts a new key), which loses nothing.
	Drain(ctx context.Context, user jid.JID) ([]archive.QueuedMessage, error)
	Prefs(ctx context.Context, user jid.JID) (domain.ArchivePrefs, error)
	SetPrefs(ctx context.Context, user jid.JID, def domain.ArchiveMode, always, never []jid.JID) (domain.ArchivePrefs, error)
	StoreMany(ctx context.Context, user jid.JID, entries ...archive.Entry) ([]uuid.UUID, error)
	WaitIndexed(ctx context.Context, user jid.JID) error
	Queue(ctx context.Context, user jid.JID, stanza []byte) (uuid.UUID, error)
}

// Accounts is what the package needs of accounts.Service.
type Accounts interface {
	CheckUsername(user jid.JID) error
	CheckPassword(password string) error
	Exists(ctx context.Context, user jid.JID) (bool, error)
	Register(ctx context.Context, user jid.JID, password string) error
	Credentials(ctx context.Context, user jid.JID, hash string) (domain.SCRAMVerifier, error)
}

// Keys is what the package needs of archive.Keys.
type Keys interface {
	Provision(ctx context.Context, user jid.JID, clientKeys map[string][]byte) error
	// ProvisionInterim wraps a new identity under interim keys that the
	// key store keeps until the user's first login (bulk import).
	ProvisionInterim(ctx context.Context, user jid.JID, verifiers []domain.SCRAMVerifier) error
}

// Deps are the services export and import work on. Store, Archive and
// Accounts are required; Keys only for imports that create accounts from
// SCRAM verifiers.
type Deps struct {
	Store    eventstore.Store
	Archive  Archive
	Accounts Accounts
	Keys     Keys
	Clock    domain.Clock
	// Limits of the domain rules, as the XMPP front end configures them
	// (0: the front end's defaults).
	MaxRosterItems    int
	MaxBlocklistItems int
	MaxVCardBytes     int
	Private           domain.PrivateLimits
}

func (d Deps) clock() domain.Clock {
	if d.Clock == nil {
		return domain.SystemClock{}
	}
	return d.Clock
}

func (d Deps) withDefaults() Deps {
	if d.MaxRosterItems == 0 {
		d.MaxRosterItems = 5000
	}
	if d.MaxBlocklistItems == 0 {
		d.MaxBlocklistItems = 1000
	}
	if d.Private.MaxItemBytes == 0 {
		d.Private.MaxItemBytes = 64 << 10
	}
	if d.Private.MaxItems == 0 {
		d.Private.MaxItems = 64
	}
	return d
}

// ExportOptions tune Export.
type ExportOptions struct {
	// IncludeCredentials adds the account's SCRAM verifiers
	// (<scram-credentials>), for an operator's migration to another
	// server. Off for a user's own export: a verifier allows an offline
	// guess at the password.
	IncludeCredentials bool
	// PageSize is the archive page read at a time (archive's cap applies).
	PageSize int
	// Progress, if set, is called after each page of history with the
	// number of messages written so far.
	Progress func(messages int)
	// DetachedManifest leaves the manifest out of the file; Export still
	// returns it, and its SHA-256 is then that of the whole file, for a
	// .manifest.json beside it. For an XEP-0227 file meant for Prosody:
	// Prosody's XML parser refuses comments, the trailer's form, and
	// loads nothing from a file that has one.
	DetachedManifest bool
}

// Manifest says what an export holds. It is written at the end of the
// file and returned by Export.
type Manifest struct {
	// Format and User name the export.
	Format Format `json:"format"`
	User   string `json:"user"`
	// Counts per kind: account, roster, roster_request, vcard, private,
	// blocklist, prefs, offline, message.
	Counts map[string]int `json:"counts"`
	// Bytes is the length of the content before the manifest, SHA256 the
	// hex SHA-256 of those bytes.
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Kinds counted in a manifest.
const (
	KindAccount       = "account"
	KindRoster        = "roster"
	KindRosterRequest = "roster_request"
	KindVCard         = "vcard"
	KindPrivate       = "private"
	KindBlocklist     = "blocklist"
	KindPrefs         = "prefs"
	KindOffline       = "offline"
	KindMessage       = "message"
)

// Limits bound what Import reads. Zero fields take the defaults.
type Limits struct {
	// MaxElementBytes bounds each child of <user> other than the archive
	// and offline containers (a roster, a vCard with its photo, the
	// private storage), and any single token. Default 8 MiB.
	MaxElementBytes int
	// MaxStanzaBytes bounds each archived or offline message. Default
	// 256 KiB, the c2s stanza limit.
	MaxStanzaBytes int
	// MaxDepth bounds nesting in the whole document. Default 64.
	MaxDepth int
	// MaxAttrs bounds the attributes of one element. Default 64.
	MaxAttrs int
	// MaxIncludeDepth bounds nested XInclude files. Default 2.
	MaxIncludeDepth int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxElementBytes, 8<<20)
	def(&l.MaxStanzaBytes, 256<<10)
	def(&l.MaxDepth, 64)
	def(&l.MaxAttrs, 64)
	def(&l.MaxIncludeDepth, 2)
	return l
}

// ImportOptions tune Import.
type ImportOptions struct {
	// Password, for a user importing their own file: it must match the
	// file's SCRAM verifiers if there are any, registers the account if
	// the file has no credentials, and lets the history be sealed under
	// the user's own keys at once. Only for files with one user.
	Password string
	// Domain, if set, is the only host accepted.
	Domain string
	// MergeExisting writes into accounts that exist already (their
	// credentials in the file are ignored); otherwise such a user is
	// refused with ErrExists before anything is written.
	MergeExisting bool
	// Include opens the file an <xi:include href=…/> names (ejabberd
	// splits its export per host). Nil refuses includes. The caller
	// decides which paths are allowed.
	Include func(href string) (ReadCloser, error)
	// SpoolDir is where validated history waits, encrypted under a key
	// that lives in memory only, between validation and writing
	// (os.TempDir()).
	SpoolDir string
	Limits   Limits
	// Progress, if set, is called while history is written.
	Progress func(user string, messages int)
	// Indexing, if set, is called when a user's history is written and
	// the import waits for the archive index to catch up (about a minute
	// for a million messages), so that a progress display can say why.
	Indexing func(user string)
}

// ReadCloser is an included file.
type ReadCloser interface {
	Read(p []byte) (int, error)
	Close() error
}

// Report says what Import did.
type Report struct {
	Users []UserReport
}

// UserReport is one imported user.
type UserReport struct {
	JID     string
	Created bool
	Counts  map[string]int
	// Skipped counts elements of the file that verlauf does not keep
	// (privacy lists beyond the block list, PEP, pubsub, …), by name.
	Skipped map[string]int
	// Interim is set for an account created from SCRAM verifiers
	// without the user's password: its history is sealed under an
	// identity that the server's key store can open with interim keys
	// until the user's first login reseals it (archive.Keys.Reseal). The
	// interim keys are never handed out; see the package documentation.
	Interim bool
}

// stampLayout is the XEP-0082 DateTime with as many fractional digits as
// the time has, so that a round trip keeps the archive's precision.
const stampLayout = time.RFC3339Nano
