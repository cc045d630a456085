// Package archiving keeps the messages between users in their archives as
// the router delivers them (DESIGN.md, "How a chat message moves", step 3)
// and holds the no-store rules: what is never archived, never queued
// offline and never carbon-copied (Classify).
//
// For each chat or normal message with content, and for each local party
// whose XEP-0313 preferences keep the conversation, the Archiver draws an
// archive id (a UUIDv7), records it on the message so that the copies
// delivered to that party carry <stanza-id by=party id=…/> (XEP-0359), and
// appends the sealed copy to the party's archive stream. The router calls
// it on the sender's worker before delivery, and delivers once the appends
// are durable: a message that carries a stanza-id is in the archive. The
// two parties' copies are one append (archive.Service.StoreCopies), so
// the sender waits for one group-committed fsync.
//
// Bodies are never logged, at any level: logs name the user and the error.
package archiving

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Archive is what the archiver needs of the archive (*archive.Service).
type Archive interface {
	NewID() (uuid.UUID, error)
	Prefs(ctx context.Context, user jid.JID) (domain.ArchivePrefs, error)
	StoreWithID(ctx context.Context, id uuid.UUID, user, partner jid.JID, stanza []byte, dir domain.Direction, at time.Time) error
	StoreCopies(ctx context.Context, copies ...archive.Copy) error
}

// Roster says whether a contact is in a user's roster, for the "roster"
// preference (*projections.Roster).
type Roster interface {
	Item(ctx context.Context, user, contact jid.JID) (domain.RosterItem, bool, error)
}

// Config is what an Archiver needs. Archive and Domain are required.
type Config struct {
	Archive Archive
	// Roster answers the "roster" preference; nil counts nobody as in
	// the roster.
	Roster Roster
	// Domain is the local domain: only local parties have archives here.
	Domain string
	// Clock stamps the archived messages (domain.SystemClock).
	Clock domain.Clock
	Log   *logrus.Entry
}

// Archiver is the router's Archiver.
type Archiver struct {
	cfg Config
	log *logrus.Entry
}

var _ router.Archiver = (*Archiver)(nil)

// New returns an archiver; install it with Router.UseArchiver.
func New(cfg Config) *Archiver {
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		cfg.Log = logrus.NewEntry(l)
	}
	if d, err := jid.Parse(cfg.Domain); err == nil {
		cfg.Domain = d.Domainpart()
	}
	return &Archiver{cfg: cfg, log: cfg.Log}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Register announces XEP-0359 unique and stable stanza ids.
func (a *Archiver) Register(mux *router.Mux) { mux.Feature(router.NSStanzaID) }

// Keeps implements router.Archiver: chat and normal messages with content
// that are not no-store.
func (a *Archiver) Keeps(st *stream.Element) bool { return Archivable(st) }

// side is one party's archive of a message.
type side struct {
	user, partner jid.JID
	dir           domain.Direction
	id            uuid.UUID
	err           error
}

// Archive implements router.Archiver.
func (a *Archiver) Archive(ctx context.Context, m *router.Message) error {
	if !Archivable(m.Stanza) {
		return nil
	}
	var sides []*side
	if a.local(m.From) {
		sides = append(sides, &side{user: m.From.Bare(), partner: m.To, dir: domain.DirectionOut})
	}
	// A message to oneself (another resource, or one's bare JID) is one
	// message in one archive, not two.
	if a.local(m.To) && !m.To.Bare().Equal(m.From.Bare()) {
		sides = append(sides, &side{user: m.To.Bare(), partner: m.From, dir: domain.DirectionIn})
	}
	kept := sides[:0]
	for _, s := range sides {
		if a.keeps(ctx, s.user, s.partner) {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	at := a.cfg.Clock.Now()
	for _, s := range kept {
		if s.id, s.err = a.cfg.Archive.NewID(); s.err == nil {
			m.SetID(s.user, s.id.String())
		}
	}
	// The stanzas are serialised here, not in the goroutines: m is not
	// safe for concurrent use.
	raws := make([][]byte, len(kept))
	for i, s := range kept {
		if s.err == nil {
			raws[i] = m.For(s.user).AppendStanza(nil, stanza.NSClient)
		}
	}
	a.store(ctx, kept, raws, at)
	var refuse error
	for _, s := range kept {
		if s.err == nil {
			continue
		}
		// Without the id, the user's client does not take the message
		// for archived.
		m.SetID(s.user, "")
		a.log.WithError(s.err).WithField("user", s.user.String()).Error("archiving: message not archived")
		if s.dir == domain.DirectionOut {
			// The sender keeps history and this message cannot be
			// kept: refuse it rather than deliver a conversation the
			// sender's archive will miss. A full disk is a condition
			// to wait out; anything else is the server's fault.
			refuse = &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError, Text: "the message could not be archived"}
			if errors.Is(s.err, syscall.ENOSPC) {
				refuse = &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "history storage is full; try again later"}
			}
		}
	}
	return refuse
}

// store appends the kept copies. Both parties' copies go in one append,
// so the message waits for one fsync, not for two appends that may fall
// into two consecutive fsyncs. If that append fails, each copy is tried
// alone, so that one party's trouble (its keys, its part of the disk)
// does not cost the other its archive; on a full disk both fail again.
func (a *Archiver) store(ctx context.Context, kept []*side, raws [][]byte, at time.Time) {
	var copies []archive.Copy
	var sides []*side
	for i, s := range kept {
		if s.err == nil {
			copies = append(copies, archive.Copy{User: s.user, Entry: archive.Entry{ID: s.id, Partner: s.partner, Direction: s.dir, At: at, Stanza: raws[i]}})
			sides = append(sides, s)
		}
	}
	if len(copies) > 1 {
		err := a.cfg.Archive.StoreCopies(ctx, copies...)
		if err == nil || ctx.Err() != nil {
			for _, s := range sides {
				s.err = err
			}
			return
		}
		a.log.WithError(err).Debug("archiving: storing the copies together failed; trying each alone")
	}
	for i, s := range sides {
		e := copies[i].Entry
		s.err = a.cfg.Archive.StoreWithID(ctx, s.id, s.user, e.Partner, e.Stanza, e.Direction, at)
	}
}

// local reports whether j is a local user, who may have an archive.
func (a *Archiver) local(j jid.JID) bool {
	return j.Localpart() != "" && strings.EqualFold(j.Domainpart(), a.cfg.Domain)
}

// keeps asks user's preferences whether the conversation with partner is
// archived. The roster is read only when the answer depends on it.
func (a *Archiver) keeps(ctx context.Context, user, partner jid.JID) bool {
	p, err := a.cfg.Archive.Prefs(ctx, user)
	if err != nil {
		a.log.WithError(err).WithField("user", user.String()).Error("archiving: preferences")
		return false
	}
	inRoster := false
	if p.Default == domain.ArchiveRoster && a.cfg.Roster != nil {
		_, inRoster, err = a.cfg.Roster.Item(ctx, user, partner.Bare())
		if err != nil {
			a.log.WithError(err).WithField("user", user.String()).Error("archiving: roster")
		}
	}
	return p.Archives(partner, inRoster)
}
