package accounts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// Errors of the service, matched with errors.Is. The domain's own errors
// (domain.ErrAccountExists, domain.ErrInvalidJID, ...) stay in the chain
// where they apply.
var (
	// ErrExists is returned by Register when the name is taken, also by
	// an account that was deleted: names are never handed out twice (see
	// domain.Account).
	ErrExists = errors.New("accounts: account already exists")
	// ErrNotFound is returned for an account that was never registered or
	// has been deleted.
	ErrNotFound = errors.New("accounts: no such account")
	// ErrInvalidUsername is returned for a JID that cannot name a local
	// account: no localpart, a resource, a localpart that fails the
	// UsernameCaseMapped profile, or another domain.
	ErrInvalidUsername = errors.New("accounts: invalid username")
	// ErrInvalidPassword is returned for a password the policy refuses.
	ErrInvalidPassword = errors.New("accounts: invalid password")
	// ErrAuthFailed is returned by VerifyPassword for a wrong password and
	// for an unknown account alike, so that a caller cannot tell them apart
	// by mistake.
	ErrAuthFailed = errors.New("accounts: authentication failed")
	// ErrHook wraps the error of a hook. The change the hook was told about
	// has been recorded nonetheless.
	ErrHook = errors.New("accounts: hook failed")
)

// Defaults of Config.
const (
	// DefaultIterations is the PBKDF2 iteration count of new verifiers.
	// RFC 7677 asks for at least 4096; more makes an offline guess at a
	// stolen verifier dearer, and costs one derivation per PLAIN login and
	// per registration or password change, never per SCRAM login.
	DefaultIterations = 10_000
	// DefaultMaxPasswordLen bounds a password in bytes. It is checked
	// before any Unicode processing so that a huge password costs nothing.
	DefaultMaxPasswordLen = 1024
)

// KeyMaterial is what a hook learns of a new password. ClientKeys maps a
// SCRAM hash name (domain.HashSHA1, domain.HashSHA256) to that hash's
// ClientKey, from which the archive derives the user's key-encryption keys
// (DESIGN.md, "Encryption at rest"). The service wipes the keys when the
// hook returns: a hook that needs them later must copy them.
type KeyMaterial struct {
	User       jid.JID
	Verifiers  []domain.SCRAMVerifier
	ClientKeys map[string][]byte
}

// Hooks are called after a change has been recorded, on the caller's
// goroutine. They are the extension point for what must follow an account
// change outside the account stream: wrapping the archive keys under a new
// password, shredding them on deletion, closing the sessions of a deleted
// account. Nil hooks are skipped; the client keys are derived only when a
// hook will receive them.
type Hooks struct {
	OnRegistered      func(ctx context.Context, c KeyMaterial) error
	OnPasswordChanged func(ctx context.Context, c KeyMaterial) error
	OnDeleted         func(ctx context.Context, user jid.JID) error
}

// Directory lists the registered accounts; the accounts projection
// (projections.Accounts) implements it.
type Directory interface {
	List(ctx context.Context) ([]string, error)
}

// Config configures a Service. Store is required; the zero value of every
// other field takes its default.
type Config struct {
	// Store is the event store (wrapped by the upcaster in production).
	Store eventstore.Store
	// Directory backs List; nil makes List fail.
	Directory Directory
	// Domain, if set, is the only domain accounts may be created or looked
	// up in.
	Domain string
	// Iterations is the PBKDF2 iteration count of new verifiers
	// (DefaultIterations; at least domain.MinSCRAMIterations).
	Iterations int
	// MaxPasswordLen bounds passwords in bytes (DefaultMaxPasswordLen).
	MaxPasswordLen int
	// Rand is the source of salts (crypto/rand.Reader).
	Rand io.Reader
	// Clock stamps events (domain.SystemClock).
	Clock domain.Clock
	Hooks Hooks
}

// Service runs account commands and authentication checks. It holds no
// state of its own beyond its configuration and is safe for concurrent use.
type Service struct {
	cfg Config
}

// New returns a service for cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("accounts: no store")
	}
	if cfg.Iterations == 0 {
		cfg.Iterations = DefaultIterations
	}
	if cfg.Iterations < domain.MinSCRAMIterations {
		return nil, fmt.Errorf("accounts: %d iterations, want at least %d", cfg.Iterations, domain.MinSCRAMIterations)
	}
	if cfg.MaxPasswordLen <= 0 {
		cfg.MaxPasswordLen = DefaultMaxPasswordLen
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	return &Service{cfg: cfg}, nil
}

var accountAgg = eventstore.Aggregate[domain.Account]{
	Fold: func(a domain.Account, ev domain.Event) (domain.Account, error) {
		return domain.Fold(a, domain.Account.Apply, ev)
	},
}

// CheckUsername reports whether user can name a local account, with an
// error wrapping ErrInvalidUsername if not.
func (s *Service) CheckUsername(user jid.JID) error {
	switch {
	case user.Localpart() == "":
		return fmt.Errorf("%w: %q has no username", ErrInvalidUsername, user.String())
	case user.Resourcepart() != "":
		return fmt.Errorf("%w: %q has a resource", ErrInvalidUsername, user.String())
	case s.cfg.Domain != "" && user.Domainpart() != s.cfg.Domain:
		return fmt.Errorf("%w: %q is not on %s", ErrInvalidUsername, user.String(), s.cfg.Domain)
	}
	return nil
}

// CheckPassword applies the password policy: not empty, at most
// MaxPasswordLen bytes, valid UTF-8 and valid under the PRECIS
// OpaqueString profile (RFC 8265), which is what both SCRAM sides
// normalize to.
func (s *Service) CheckPassword(password string) error {
	switch {
	case password == "":
		return fmt.Errorf("%w: empty", ErrInvalidPassword)
	case len(password) > s.cfg.MaxPasswordLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidPassword, s.cfg.MaxPasswordLen)
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidPassword)
	}
	if _, err := domain.NormalizePassword(password); err != nil {
		return fmt.Errorf("%w: characters outside the OpaqueString profile: %w", ErrInvalidPassword, err)
	}
	return nil
}

// Register creates the account user with password.
func (s *Service) Register(ctx context.Context, user jid.JID, password string) error {
	if err := s.CheckUsername(user); err != nil {
		return err
	}
	if err := s.CheckPassword(password); err != nil {
		return err
	}
	// Refuse a taken name before paying for the key derivation; the
	// decision below checks again under the append's concurrency control.
	cur, err := eventstore.Load(ctx, s.cfg.Store, domain.AccountStream(user), accountAgg)
	if err != nil {
		return fmt.Errorf("accounts: register %s: %w", user, err)
	}
	if cur.State.Registered {
		return fmt.Errorf("%w: %s", ErrExists, user)
	}
	creds, err := s.derive(user, password, s.cfg.Hooks.OnRegistered != nil)
	if err != nil {
		return err
	}
	defer creds.wipe()
	_, _, err = eventstore.Execute(ctx, s.cfg.Store, domain.AccountStream(user), accountAgg,
		func(a domain.Account) ([]domain.Event, error) {
			ps, err := a.Register(user, creds.Verifiers)
			if err != nil {
				return nil, err
			}
			return domain.NewEvents(s.cfg.Clock, ps...)
		})
	switch {
	case errors.Is(err, domain.ErrAccountExists), errors.Is(err, domain.ErrAccountDeleted):
		return fmt.Errorf("%w: %w", ErrExists, err)
	case errors.Is(err, domain.ErrInvalidJID):
		return fmt.Errorf("%w: %w", ErrInvalidUsername, err)
	case err != nil:
		return fmt.Errorf("accounts: register %s: %w", user, err)
	}
	return s.callHook(ctx, "registered", s.cfg.Hooks.OnRegistered, creds.KeyMaterial)
}

// ChangePassword replaces the verifiers of user's account.
func (s *Service) ChangePassword(ctx context.Context, user jid.JID, password string) error {
	if err := s.CheckUsername(user); err != nil {
		return err
	}
	if err := s.CheckPassword(password); err != nil {
		return err
	}
	if ok, err := s.Exists(ctx, user); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, user)
	}
	creds, err := s.derive(user, password, s.cfg.Hooks.OnPasswordChanged != nil)
	if err != nil {
		return err
	}
	defer creds.wipe()
	_, _, err = eventstore.Execute(ctx, s.cfg.Store, domain.AccountStream(user), accountAgg,
		func(a domain.Account) ([]domain.Event, error) {
			ps, err := a.ChangePassword(creds.Verifiers)
			if err != nil {
				return nil, err
			}
			return domain.NewEvents(s.cfg.Clock, ps...)
		})
	if err := notFound(user, err); err != nil {
		return err
	}
	return s.callHook(ctx, "password changed", s.cfg.Hooks.OnPasswordChanged, creds.KeyMaterial)
}

// Delete deletes user's account for good. The name cannot be registered
// again (see domain.Account).
func (s *Service) Delete(ctx context.Context, user jid.JID) error {
	if err := s.CheckUsername(user); err != nil {
		return err
	}
	_, _, err := eventstore.Execute(ctx, s.cfg.Store, domain.AccountStream(user), accountAgg,
		func(a domain.Account) ([]domain.Event, error) {
			ps, err := a.Delete()
			if err != nil {
				return nil, err
			}
			return domain.NewEvents(s.cfg.Clock, ps...)
		})
	if err := notFound(user, err); err != nil {
		return err
	}
	if h := s.cfg.Hooks.OnDeleted; h != nil {
		if err := h(ctx, user); err != nil {
			return fmt.Errorf("%w: deleted %s: %w", ErrHook, user, err)
		}
	}
	return nil
}

func notFound(user jid.JID, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, domain.ErrAccountNotFound), errors.Is(err, domain.ErrAccountDeleted):
		return fmt.Errorf("%w: %s: %w", ErrNotFound, user, err)
	default:
		return fmt.Errorf("accounts: %s: %w", user, err)
	}
}

// load returns the account if it is active.
func (s *Service) load(ctx context.Context, user jid.JID) (domain.Account, error) {
	if err := s.CheckUsername(user); err != nil {
		return domain.Account{}, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	l, err := eventstore.Load(ctx, s.cfg.Store, domain.AccountStream(user), accountAgg)
	if err != nil {
		return domain.Account{}, fmt.Errorf("accounts: load %s: %w", user, err)
	}
	if !l.State.Active() {
		return domain.Account{}, fmt.Errorf("%w: %s", ErrNotFound, user)
	}
	return l.State, nil
}

// Exists reports whether user has an active account.
func (s *Service) Exists(ctx context.Context, user jid.JID) (bool, error) {
	_, err := s.load(ctx, user)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// Credentials returns the SCRAM verifier of user for a hash name
// (domain.HashSHA1, domain.HashSHA256), ErrNotFound for an unknown or
// deleted account or a hash the account has no verifier for.
func (s *Service) Credentials(ctx context.Context, user jid.JID, hash string) (domain.SCRAMVerifier, error) {
	a, err := s.load(ctx, user)
	if err != nil {
		return domain.SCRAMVerifier{}, err
	}
	v, ok := a.Verifier(hash)
	if !ok {
		return domain.SCRAMVerifier{}, fmt.Errorf("%w: %s has no %s verifier", ErrNotFound, user, hash)
	}
	return v, nil
}

// VerifyPassword checks password against user's stored verifier, for
// PLAIN and for the HTTPS API. The comparison is constant-time, and an
// unknown account costs the same key derivation as a known one, so the
// response time does not tell whether the account exists. Both failures
// return ErrAuthFailed; ErrNotFound is also in the chain for an unknown
// account, for logs.
func (s *Service) VerifyPassword(ctx context.Context, user jid.JID, password string) error {
	if err := s.CheckPassword(password); err != nil {
		return fmt.Errorf("%w: %w", ErrAuthFailed, err)
	}
	a, err := s.load(ctx, user)
	missing := errors.Is(err, ErrNotFound)
	if err != nil && !missing {
		return err
	}
	v, ok := a.Verifier(domain.HashSHA256)
	if !ok {
		v, ok = a.Verifier(domain.HashSHA1)
	}
	if !ok {
		// A fixed stand-in costs the same derivation as a real check.
		v = domain.SCRAMVerifier{Hash: domain.HashSHA256, Salt: make([]byte, domain.DefaultSaltLen), Iterations: s.cfg.Iterations}
		missing = true
	}
	got, err := domain.NewSCRAMVerifier(v.Hash, password, v.Salt, max(v.Iterations, domain.MinSCRAMIterations))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAuthFailed, err)
	}
	match := subtle.ConstantTimeCompare(got.StoredKey, v.StoredKey) == 1
	if missing {
		return fmt.Errorf("%w: %w: %s", ErrAuthFailed, ErrNotFound, user)
	}
	if !match {
		return fmt.Errorf("%w: wrong password for %s", ErrAuthFailed, user)
	}
	return nil
}

// List returns the active accounts, sorted, as the accounts projection
// has them: an account registered a moment ago may be missing until the
// projection has caught up (projections.Runner.WaitFor).
func (s *Service) List(ctx context.Context) ([]jid.JID, error) {
	if s.cfg.Directory == nil {
		return nil, errors.New("accounts: list: no directory configured")
	}
	names, err := s.cfg.Directory.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("accounts: list: %w", err)
	}
	out := make([]jid.JID, 0, len(names))
	for _, n := range names {
		j, err := domain.ParseBareJID(n)
		if err != nil {
			return nil, fmt.Errorf("accounts: list: %w", err)
		}
		out = append(out, j)
	}
	return out, nil
}

// secret is a KeyMaterial with the means to wipe its keys.
type secret struct{ KeyMaterial }

func (c secret) wipe() {
	for _, k := range c.ClientKeys {
		clear(k)
	}
}

// derive draws a fresh salt per hash and derives the verifiers, and the
// client keys if withKeys.
func (s *Service) derive(user jid.JID, password string, withKeys bool) (secret, error) {
	vs, err := domain.NewSCRAMVerifiers(s.cfg.Rand, password, s.cfg.Iterations)
	if err != nil {
		if errors.Is(err, domain.ErrInvalidCredentials) {
			return secret{}, fmt.Errorf("%w: %w", ErrInvalidPassword, err)
		}
		return secret{}, fmt.Errorf("accounts: derive verifiers: %w", err)
	}
	c := secret{KeyMaterial{User: user, Verifiers: vs}}
	if !withKeys {
		return c, nil
	}
	c.ClientKeys = make(map[string][]byte, len(vs))
	for _, v := range vs {
		sp, err := domain.SaltedPassword(v.Hash, password, v.Salt, v.Iterations)
		if err != nil {
			return secret{}, fmt.Errorf("accounts: derive client key: %w", err)
		}
		k, err := domain.ClientKey(v.Hash, sp)
		clear(sp)
		if err != nil {
			return secret{}, fmt.Errorf("accounts: derive client key: %w", err)
		}
		c.ClientKeys[v.Hash] = k
	}
	return c, nil
}

func (s *Service) callHook(ctx context.Context, what string, h func(context.Context, KeyMaterial) error, c KeyMaterial) error {
	if h == nil {
		return nil
	}
	if err := h(ctx, c); err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrHook, what, c.User, err)
	}
	return nil
}
