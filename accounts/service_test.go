package accounts

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/embedded"
)

func openStore(t testing.TB) eventstore.Store {
	t.Helper()
	s, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newService(t testing.TB, cfg Config) *Service {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = openStore(t)
	}
	if cfg.Iterations == 0 {
		cfg.Iterations = domain.MinSCRAMIterations
	}
	if cfg.Domain == "" {
		cfg.Domain = "example.org"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var alice = jid.MustParse("alice@example.org")

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	s := newService(t, Config{})

	if ok, err := s.Exists(ctx, alice); err != nil || ok {
		t.Fatalf("Exists before register = %v, %v", ok, err)
	}
	if err := s.Register(ctx, alice, "pencil"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Exists(ctx, alice); err != nil || !ok {
		t.Fatalf("Exists after register = %v, %v", ok, err)
	}
	if err := s.Register(ctx, alice, "other"); !errors.Is(err, ErrExists) {
		t.Fatalf("second Register: %v, want ErrExists", err)
	}
	// Usernames are case-mapped: Alice is alice.
	if err := s.Register(ctx, jid.MustParse("Alice@example.org"), "x"); !errors.Is(err, ErrExists) {
		t.Fatalf("Register Alice: %v, want ErrExists", err)
	}

	for _, h := range []string{domain.HashSHA1, domain.HashSHA256} {
		v, err := s.Credentials(ctx, alice, h)
		if err != nil {
			t.Fatalf("Credentials %s: %v", h, err)
		}
		want, err := domain.NewSCRAMVerifier(h, "pencil", v.Salt, v.Iterations)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(v.StoredKey, want.StoredKey) || v.Iterations != domain.MinSCRAMIterations || len(v.Salt) != domain.DefaultSaltLen {
			t.Errorf("%s verifier does not derive from the password: %+v", h, v)
		}
	}
	v1, _ := s.Credentials(ctx, alice, domain.HashSHA1)
	v256, _ := s.Credentials(ctx, alice, domain.HashSHA256)
	if slices.Equal(v1.Salt, v256.Salt) {
		t.Error("both hashes share a salt")
	}

	if err := s.VerifyPassword(ctx, alice, "pencil"); err != nil {
		t.Errorf("VerifyPassword right: %v", err)
	}
	if err := s.VerifyPassword(ctx, alice, "pencil2"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("VerifyPassword wrong: %v", err)
	}

	if err := s.ChangePassword(ctx, alice, "eraser"); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyPassword(ctx, alice, "pencil"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("old password still valid: %v", err)
	}
	if err := s.VerifyPassword(ctx, alice, "eraser"); err != nil {
		t.Errorf("new password refused: %v", err)
	}
	v2, _ := s.Credentials(ctx, alice, domain.HashSHA256)
	if slices.Equal(v2.Salt, v256.Salt) {
		t.Error("password change kept the salt")
	}

	if err := s.Delete(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Exists(ctx, alice); err != nil || ok {
		t.Errorf("Exists after delete = %v, %v", ok, err)
	}
	if _, err := s.Credentials(ctx, alice, domain.HashSHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Credentials after delete: %v", err)
	}
	if err := s.VerifyPassword(ctx, alice, "eraser"); !errors.Is(err, ErrAuthFailed) || !errors.Is(err, ErrNotFound) {
		t.Errorf("VerifyPassword after delete: %v", err)
	}
	for name, err := range map[string]error{
		"delete":   s.Delete(ctx, alice),
		"passwd":   s.ChangePassword(ctx, alice, "x"),
		"register": s.Register(ctx, alice, "x"),
	} {
		want := ErrNotFound
		if name == "register" {
			want = ErrExists // names are never reused
		}
		if !errors.Is(err, want) {
			t.Errorf("%s after delete: %v, want %v", name, err, want)
		}
	}
}

func TestUnknownAccount(t *testing.T) {
	ctx := context.Background()
	s := newService(t, Config{})
	bob := jid.MustParse("bob@example.org")
	if _, err := s.Credentials(ctx, bob, domain.HashSHA1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Credentials: %v", err)
	}
	if err := s.VerifyPassword(ctx, bob, "x"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("VerifyPassword: %v", err)
	}
	if err := s.ChangePassword(ctx, bob, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ChangePassword: %v", err)
	}
	if err := s.Delete(ctx, bob); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete: %v", err)
	}
	if _, err := s.Credentials(ctx, bob, "MD5"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Credentials MD5: %v", err)
	}
}

func TestRegisterRefuses(t *testing.T) {
	s := newService(t, Config{MaxPasswordLen: 16})
	tests := []struct {
		name     string
		user     string
		password string
		want     error
	}{
		{"empty password", "a@example.org", "", ErrInvalidPassword},
		{"long password", "a@example.org", strings.Repeat("x", 17), ErrInvalidPassword},
		{"control character", "a@example.org", "pass\x07word", ErrInvalidPassword},
		{"not UTF-8", "a@example.org", "pass\xffword", ErrInvalidPassword},
		{"no localpart", "example.org", "pencil", ErrInvalidUsername},
		{"resource", "a@example.org/phone", "pencil", ErrInvalidUsername},
		{"other domain", "a@example.net", "pencil", ErrInvalidUsername},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Register(context.Background(), jid.MustParse(tt.user), tt.password)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Register: %v, want %v", err, tt.want)
			}
			if ok, _ := s.Exists(context.Background(), jid.MustParse(tt.user).Bare()); ok {
				t.Error("account created anyway")
			}
		})
	}
	// The longest allowed password is accepted.
	if err := s.Register(context.Background(), alice, strings.Repeat("x", 16)); err != nil {
		t.Errorf("16-byte password: %v", err)
	}
}

func TestHooks(t *testing.T) {
	ctx := context.Background()
	var got []string
	var keys []byte
	s := newService(t, Config{Hooks: Hooks{
		OnRegistered: func(_ context.Context, c KeyMaterial) error {
			got = append(got, "registered "+c.User.String())
			// The SHA-256 ClientKey must hash to the stored key.
			k := c.ClientKeys[domain.HashSHA256]
			sum := sha256.Sum256(k)
			i := slices.IndexFunc(c.Verifiers, func(v domain.SCRAMVerifier) bool { return v.Hash == domain.HashSHA256 })
			if i < 0 || !slices.Equal(sum[:], c.Verifiers[i].StoredKey) {
				t.Errorf("ClientKey does not match the verifier")
			}
			keys = k
			return nil
		},
		OnPasswordChanged: func(_ context.Context, c KeyMaterial) error {
			got = append(got, "changed "+c.User.String())
			return errors.New("keystore down")
		},
		OnDeleted: func(_ context.Context, u jid.JID) error {
			got = append(got, "deleted "+u.String())
			return nil
		},
	}})
	if err := s.Register(ctx, alice, "pencil"); err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 || slices.ContainsFunc(keys, func(b byte) bool { return b != 0 }) {
		t.Error("client key not wiped after the hook")
	}
	err := s.ChangePassword(ctx, alice, "eraser")
	if !errors.Is(err, ErrHook) {
		t.Errorf("ChangePassword with failing hook: %v", err)
	}
	if err := s.VerifyPassword(ctx, alice, "eraser"); err != nil {
		t.Errorf("change not recorded despite hook failure: %v", err)
	}
	if err := s.Delete(ctx, alice); err != nil {
		t.Fatal(err)
	}
	want := []string{"registered alice@example.org", "changed alice@example.org", "deleted alice@example.org"}
	if !slices.Equal(got, want) {
		t.Errorf("hooks %q, want %q", got, want)
	}
}

func TestConcurrentRegister(t *testing.T) {
	s := newService(t, Config{})
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() { errs <- s.Register(context.Background(), alice, "pencil") }()
	}
	ok := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			ok++
		case !errors.Is(err, ErrExists):
			t.Errorf("Register: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d registrations succeeded, want 1", ok)
	}
}

type fakeDirectory []string

func (d fakeDirectory) List(context.Context) ([]string, error) { return d, nil }

func TestList(t *testing.T) {
	s := newService(t, Config{Directory: fakeDirectory{"a@example.org", "b@example.org"}})
	got, err := s.List(context.Background())
	if err != nil || len(got) != 2 || got[1].String() != "b@example.org" {
		t.Fatalf("List = %v, %v", got, err)
	}
	if _, err := newService(t, Config{}).List(context.Background()); err == nil {
		t.Error("List without a directory succeeded")
	}
}

func TestNewRefusesWeakIterations(t *testing.T) {
	if _, err := New(Config{Store: openStore(t), Iterations: 1000}); err == nil {
		t.Error("1000 iterations accepted")
	}
}
