package mam

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/eventstore/keystore"
	"verlauf.im/verlauf/projections"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// sink records what the handler sends to each resource.
type sink struct {
	mu   sync.Mutex
	sent map[string][]*stream.Element
}

func (s *sink) SendToResource(_ context.Context, full jid.JID, st *stream.Element) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		s.sent = map[string][]*stream.Element{}
	}
	s.sent[full.String()] = append(s.sent[full.String()], st)
	return true
}

func (s *sink) take(full string) []*stream.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sent[full]
	delete(s.sent, full)
	return out
}

// env is a real archive (embedded store, projection runner, key store)
// with a MAM service in front of it.
type env struct {
	t     *testing.T
	arch  *archive.Service
	keys  *archive.Keys
	svc   *Service
	mux   *router.Mux
	sink  *sink
	store *embedded.Store
}

// newEnv opens an archive in a temporary directory. wrap, if set,
// decorates the store the archive writes and reads through (the projection
// reads the real one).
func newEnv(t *testing.T, cfg archive.Config, wrap func(eventstore.Store) eventstore.Store) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.Options{CacheSize: 4 << 20, MemTableSize: 4 << 20})
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
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	log := logrus.NewEntry(l)
	b := bus.InProcess(log)
	runner := projections.NewRunner(st, b, log, index)
	rctx, cancel := context.WithCancel(ctx)
	ready, errc := make(chan struct{}), make(chan error, 1)
	go func() { errc <- runner.Run(rctx, ready) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("runner ended before ready: %v", err)
	}
	var through eventstore.Store = st
	if wrap != nil {
		through = wrap(st)
	}
	cfg.Store, cfg.KeyStore, cfg.Index, cfg.Waiter = through, ks, index, runner
	keys := archive.NewKeys(ks, nil)
	arch, err := archive.New(cfg, keys)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, arch: arch, keys: keys, sink: &sink{}, mux: router.NewMux(), store: st}
	if e.svc, err = New(Config{Archive: arch, Router: e.sink}); err != nil {
		t.Fatal(err)
	}
	e.svc.Register(e.mux)
	t.Cleanup(func() {
		if err := arch.Close(ctx); err != nil {
			t.Errorf("close archive: %v", err)
		}
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("runner: %v", err)
		}
		b.Close()
		db.Close()
		st.Close()
		ks.Close()
	})
	return e
}

// login provisions user's keys from a password and unlocks them, as
// registration and a SCRAM login do.
func (e *env) login(user string) jid.JID {
	e.t.Helper()
	ctx := context.Background()
	j := jid.MustParse(user)
	vs, err := domain.NewSCRAMVerifiers(rand.Reader, "correct horse", domain.MinSCRAMIterations)
	if err != nil {
		e.t.Fatal(err)
	}
	cks := map[string][]byte{}
	for _, v := range vs {
		if cks[v.Hash], err = archive.ClientKeyFromPassword(v, "correct horse"); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := e.keys.Provision(ctx, j, cks); err != nil {
		e.t.Fatal(err)
	}
	if err := e.keys.Unlock(ctx, j, domain.HashSHA256, cks[domain.HashSHA256]); err != nil {
		e.t.Fatal(err)
	}
	return j
}

// base is the time of the first stored message; message i is i minutes
// later.
var base = time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)

func minute(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }

// history stores n messages of user, message i at minute(i), with romeo
// on even and mercutio on odd indexes, and returns their ids.
func (e *env) history(user jid.JID, n int) []uuid.UUID {
	e.t.Helper()
	entries := make([]archive.Entry, n)
	for i := range entries {
		partner, dir := "romeo@example.net", domain.DirectionIn
		if i%2 == 1 {
			partner, dir = "mercutio@example.net", domain.DirectionOut
		}
		entries[i] = archive.Entry{
			ID: idAt(minute(i), uint64(i)), Partner: jid.MustParse(partner + "/orchard"),
			Direction: dir, At: minute(i), Stanza: body(partner, user.String(), i),
		}
	}
	ids, err := e.arch.StoreMany(context.Background(), user, entries...)
	if err != nil {
		e.t.Fatal(err)
	}
	return ids
}

func body(from, to string, i int) []byte {
	return fmt.Appendf(nil, "<message xmlns='jabber:client' from='%s/orchard' to='%s' type='chat' id='m%d'><body>msg %d</body></message>", from, to, i, i)
}

// idAt makes a UUIDv7 archive id of time at, distinct for each n.
func idAt(at time.Time, n uint64) uuid.UUID {
	id := domain.ArchiveIDBound(at, false)
	binary.BigEndian.PutUint64(id[8:], n)
	id[6] = 0x70
	id[8] = 0x80 | id[8]&0x3f
	return id
}

// iq sends an IQ from full to to (the sender's bare JID if empty) through
// the mux, as the router would.
func (e *env) iq(from, to, typ string, payload *stream.Element) (*stream.Element, error) {
	e.t.Helper()
	f := jid.MustParse(from)
	t := f.Bare()
	if to != "" {
		t = jid.MustParse(to)
	}
	h := e.mux.Lookup(payload.Name)
	if h == nil {
		e.t.Fatalf("no handler for %v", payload.Name)
	}
	return h.HandleIQ(context.Background(), router.IQ{From: f, To: t, Type: typ, Payload: payload})
}

// page is one answered query: the archive ids of the results in the
// order sent, the forwarded stanzas and the <fin/>.
type page struct {
	ids      []uuid.UUID
	msgs     []*stream.Element // the <message/> inside each <forwarded/>
	stamps   []string
	fin      *stream.Element
	first    string
	index    string
	last     string
	count    string
	complete bool
}

// query runs a MAM query from full and collects the page, checking the
// shape of every result.
func (e *env) query(full string, q *stream.Element) (page, error) {
	e.t.Helper()
	res, err := e.iq(full, "", "set", q)
	sent := e.sink.take(full)
	if err != nil {
		if len(sent) > 0 {
			e.t.Errorf("query failed with %v but sent %d stanzas", err, len(sent))
		}
		return page{}, err
	}
	var p page
	for _, m := range sent {
		r := m.Child("result", NS)
		if m.Name.Local != "message" || m.Attr("to") != full || r == nil {
			e.t.Fatalf("not a MAM result to %s: %s", full, m)
		}
		if r.Attr("queryid") != q.Attr("queryid") {
			e.t.Fatalf("result queryid %q, want %q", r.Attr("queryid"), q.Attr("queryid"))
		}
		id, err := uuid.Parse(r.Attr("id"))
		if err != nil {
			e.t.Fatalf("result id %q: %v", r.Attr("id"), err)
		}
		fwd := r.Child("forwarded", NSForward)
		if fwd == nil || fwd.Child("delay", NSDelay) == nil || fwd.Child("message", stanza.NSClient) == nil {
			e.t.Fatalf("result without forwarded delay and message: %s", m)
		}
		p.ids = append(p.ids, id)
		p.msgs = append(p.msgs, fwd.Child("message", stanza.NSClient))
		p.stamps = append(p.stamps, fwd.Child("delay", NSDelay).Attr("stamp"))
	}
	if res == nil || res.Name != (stream.Name{Space: NS, Local: "fin"}) {
		e.t.Fatalf("IQ result %v, want <fin/>", res)
	}
	p.fin = res
	p.complete = res.Attr("complete") == "true"
	set := res.Child("set", NSRSM)
	if set == nil {
		e.t.Fatalf("<fin/> without <set/>: %s", res)
	}
	if f := set.Child("first", NSRSM); f != nil {
		p.first, p.index = f.Text(), f.Attr("index")
	}
	if l := set.Child("last", NSRSM); l != nil {
		p.last = l.Text()
	}
	if c := set.Child("count", NSRSM); c != nil {
		p.count = c.Text()
	}
	return p, nil
}

// mamQuery builds a <query/>: fields are var, value pairs of the form
// (nil: no form), rsm the <set/> children as name, value pairs (a value
// "-" makes an empty element).
func mamQuery(queryID string, fields []string, rsm []string, extra ...*stream.Element) *stream.Element {
	q := stream.NewElement(NS, "query")
	if queryID != "" {
		q.SetAttr("queryid", queryID)
	}
	if fields != nil {
		q.AddChild(submitForm(NS, fields...))
	}
	if rsm != nil {
		set := stream.NewElement(NSRSM, "set")
		for i := 0; i+1 < len(rsm); i += 2 {
			el := stream.NewElement(NSRSM, rsm[i])
			if rsm[i+1] != "-" {
				el.AddText(rsm[i+1])
			}
			set.AddChild(el)
		}
		q.AddChild(set)
	}
	for _, x := range extra {
		q.AddChild(x)
	}
	return q
}

// submitForm builds a submitted form of formType (no FORM_TYPE field if
// empty) from var, value pairs; a var repeated in a row gets several
// values.
func submitForm(formType string, fields ...string) *stream.Element {
	x := stream.NewElement(NSData, "x", "type", "submit")
	if formType != "" {
		x.AddChild(stream.NewElement(NSData, "field", "var", "FORM_TYPE", "type", "hidden").
			AddChild(stream.NewElement(NSData, "value").AddText(formType)))
	}
	var last *stream.Element
	for i := 0; i+1 < len(fields); i += 2 {
		if last == nil || last.Attr("var") != fields[i] {
			last = stream.NewElement(NSData, "field", "var", fields[i])
			x.AddChild(last)
		}
		last.AddChild(stream.NewElement(NSData, "value").AddText(fields[i+1]))
	}
	return x
}

// condition returns the stanza error's type and condition, or fails.
func condition(t *testing.T, err error) (stanza.ErrorType, stanza.Condition) {
	t.Helper()
	var se *stanza.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a stanza error", err)
	}
	return se.Type, se.Condition
}

// flipStore flips one byte of the sealed record of the target-th (from 1)
// archived message on its way to the log, as bit rot past the engine's
// checksums would: the log and the index built from it hold the damaged
// record.
type flipStore struct {
	eventstore.Store
	seen   *int
	target int
}

func (f flipStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...domain.Event) (eventstore.AppendResult, error) {
	if err := f.flip(events); err != nil {
		return eventstore.AppendResult{}, err
	}
	return f.Store.Append(ctx, stream, expected, events...)
}

func (f flipStore) AppendMulti(ctx context.Context, parts ...eventstore.StreamAppend) ([]eventstore.AppendResult, error) {
	for _, p := range parts {
		if err := f.flip(p.Events); err != nil {
			return nil, err
		}
	}
	return f.Store.AppendMulti(ctx, parts...)
}

func (f flipStore) flip(events []domain.Event) error {
	for i, ev := range events {
		if ev.Type != domain.TypeArchiveMessageStored {
			continue
		}
		if *f.seen++; *f.seen != f.target {
			continue
		}
		var body domain.ArchiveMessageStored
		if err := json.Unmarshal(ev.Body, &body); err != nil {
			return err
		}
		body.Sealed[len(body.Sealed)-20] ^= 0x01
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		events[i].Body = b
	}
	return nil
}
