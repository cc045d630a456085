// Package interop_test checks verlauf's import and export against the
// export tools of real servers, Prosody and ejabberd from Debian: users
// made on those servers with their own commands and a real client,
// exported by ejabberdctl export_piefxis and prosody-migrator (with
// mod_storage_xep0227), imported into verlauf with userdata.Import; and a
// verlauf export served by Prosody's XEP-0227 storage to a real client.
//
// The servers run as throwaway instances (tests/peers) with their own
// configuration, data directory and loopback address (127.0.0.2x), as
// the federation tests run them. The tests run as root (the servers drop
// to their own users) and fail, never skip, when a tool is missing:
// scripts/deps.sh installs them.
package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/eventstore/keystore"
	"verlauf.im/verlauf/projections"
	"verlauf.im/verlauf/tests/peers"
	"verlauf.im/verlauf/userdata"
)

// rosterItem and seen are what client.py reports.
type rosterItem struct {
	JID          string   `json:"jid"`
	Name         string   `json:"name"`
	Subscription string   `json:"subscription"`
	Groups       []string `json:"groups"`
}

type seen struct {
	Roster []rosterItem      `json:"roster"`
	VCard  map[string]string `json:"vcard"`
}

// client logs in to a real server with slixmpp (client.py), runs the
// given extra arguments (roster items, vCard) and reports what the
// server holds.
func client(t *testing.T, jidStr, password, ip string, extra ...string) seen {
	t.Helper()
	s, err := tryClient(jidStr, password, ip, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tryClient is client that returns the client's failure.
func tryClient(jidStr, password, ip string, extra ...string) (seen, error) {
	_, file, _, _ := runtime.Caller(0)
	args := append([]string{filepath.Join(filepath.Dir(file), "client.py"), "--jid", jidStr, "--password", password, "--host", ip}, extra...)
	cmd := exec.Command("/usr/bin/python3", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return seen{}, fmt.Errorf("client.py %s: %w: %s", jidStr, err, peers.Tail(stderr.String(), 20))
	}
	var s seen
	if err := json.Unmarshal(out, &s); err != nil {
		return seen{}, fmt.Errorf("client.py %s: %w: %s", jidStr, err, out)
	}
	return s, nil
}

// verlauf is a verlauf server's storage and services in process, on a
// temporary directory, wired as cmd/verlauf wires them (as userdata's
// own tests build it).
type verlauf struct {
	t        *testing.T
	keys     *archive.Keys
	ks       *keystore.Store
	archive  *archive.Service
	accounts *accounts.Service
	deps     userdata.Deps
}

func newVerlauf(t *testing.T, domainName string) *verlauf {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.Options{CacheSize: 16 << 20, MemTableSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	db, err := projections.OpenDB(filepath.Join(dir, "projections"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	index := projections.NewArchive(db)
	accProj := projections.NewAccounts(db)
	log := logrus.NewEntry(logrus.New())
	log.Logger.SetLevel(logrus.WarnLevel)
	b := bus.InProcess(log)
	runner := projections.NewRunner(store, b, log, index, accProj)
	rctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- runner.Run(rctx, ready) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("runner: %v", err)
	}
	v := &verlauf{t: t, ks: ks, keys: archive.NewKeys(ks, nil)}
	if v.archive, err = archive.New(archive.Config{Store: store, KeyStore: ks, Index: index, Waiter: runner}, v.keys); err != nil {
		t.Fatal(err)
	}
	if v.accounts, err = accounts.New(accounts.Config{
		Store: store, Directory: accProj, Domain: domainName, Iterations: domain.MinSCRAMIterations,
		Hooks: accounts.Hooks{OnRegistered: func(ctx context.Context, km accounts.KeyMaterial) error {
			return v.keys.Provision(ctx, km.User, km.ClientKeys)
		}},
	}); err != nil {
		t.Fatal(err)
	}
	v.deps = userdata.Deps{Store: store, Archive: v.archive, Accounts: v.accounts, Keys: v.keys}
	t.Cleanup(func() {
		v.archive.Close(context.Background())
		cancel()
		<-errc
		b.Close()
		db.Close()
		store.Close()
		ks.Close()
	})
	return v
}

// login does what verlauf's front ends do after a SCRAM login with the
// account's verifier: the ClientKey SCRAM recovers (here derived from
// the password, which is the same key) reseals the imported identity,
// then unlocks it.
func (v *verlauf) login(user jid.JID, password string) {
	v.t.Helper()
	ctx := context.Background()
	for _, h := range []string{domain.HashSHA256, domain.HashSHA1} {
		vf, err := v.accounts.Credentials(ctx, user, h)
		if err != nil {
			continue
		}
		ck, err := archive.ClientKeyFromPassword(vf, password)
		if err != nil {
			v.t.Fatal(err)
		}
		if _, err := v.keys.Reseal(ctx, user, map[string][]byte{h: ck}); err != nil {
			v.t.Fatalf("reseal %s: %v", user, err)
		}
		if err := v.keys.Unlock(ctx, user, h, ck); err != nil {
			v.t.Fatalf("unlock %s: %v", user, err)
		}
		return
	}
	v.t.Fatalf("%s has no verifier in verlauf", user)
}

// exported is a user's data as verlauf's JSON Lines export shows it.
type exported struct {
	roster map[string]rosterItem
	vcard  string
	lines  []map[string]any
}

// export exports user from verlauf (JSON Lines) and collects the roster
// and the vCard.
func (v *verlauf) export(user jid.JID) exported {
	v.t.Helper()
	var buf bytes.Buffer
	if _, err := userdata.Export(context.Background(), &buf, v.deps, user, userdata.JSONLines, userdata.ExportOptions{}); err != nil {
		v.t.Fatal(err)
	}
	e := exported{roster: map[string]rosterItem{}}
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			v.t.Fatalf("export line %s: %v", line, err)
		}
		e.lines = append(e.lines, m)
		switch m["kind"] {
		case userdata.KindRoster:
			raw, _ := json.Marshal(m["item"])
			var it rosterItem
			if err := json.Unmarshal(raw, &it); err != nil {
				v.t.Fatal(err)
			}
			e.roster[it.JID] = it
		case userdata.KindVCard:
			e.vcard, _ = m["xml"].(string)
		}
	}
	return e
}

func mustJID(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
