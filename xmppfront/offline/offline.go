// Package offline implements offline messages (XEP-0160, with XEP-0203
// delayed delivery): a chat or normal message for a local user with no
// available resource is sealed to the user's public key and queued in the
// user's offline stream, and delivered with a <delay/> when a resource of
// the user next becomes available; then the queue forgets it for good (the
// key that sealed it is deleted).
//
// The rules for what is queued: an OTR or no-store message never is (the
// sender gets service-unavailable, as if nobody were there, so an OTR
// client learns the peer is offline); a message without content (chat
// states, receipts, markers alone) is dropped unless it carries an
// XEP-0334 <store/> hint; past the queue's bound the sender gets
// resource-constraint (type wait). Groupchat, headline and error messages
// never reach the queue: the router applies RFC 6121 §8.5.2 to them.
package offline

import (
	"context"
	"errors"
	"sync"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/xmppfront/archiving"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces.
const (
	NSDelay = "urn:xmpp:delay" // XEP-0203
	// Feature is XEP-0160's disco feature.
	Feature = "msgoffline"
)

// Queue is the offline queue (*archive.Service).
type Queue interface {
	Queue(ctx context.Context, user jid.JID, stanza []byte) (uuid.UUID, error)
	Drain(ctx context.Context, user jid.JID) ([]archive.QueuedMessage, error)
	Delivered(ctx context.Context, user jid.JID, ids []uuid.UUID) error
}

// Router is what offline delivery needs of the session registry
// (*router.Router).
type Router interface {
	Resources(bare jid.JID) []router.Resource
	SendToResourceWait(ctx context.Context, full jid.JID, st *stream.Element) bool
}

// Config is what a Service needs; Queue, Router and Domain are required.
type Config struct {
	Queue  Queue
	Router Router
	// Domain stamps the <delay from=…/>.
	Domain string
	// MaxStanzaSize bounds a queued stanza read back
	// (stream.DefaultMaxStanzaSize).
	MaxStanzaSize int
	Log           *logrus.Entry
}

// Service is the router's OfflineHandler and AvailableHandler.
type Service struct {
	cfg Config
	log *logrus.Entry

	// mu guards draining; one drain per user at a time, so two resources
	// coming online together do not both get the queue.
	mu       sync.Mutex
	draining map[string]*userLock
}

type userLock struct {
	mu   sync.Mutex
	refs int
}

var (
	_ router.OfflineHandler   = (*Service)(nil)
	_ router.OfflineErrorer   = (*Service)(nil)
	_ router.AvailableHandler = (*Service)(nil)
)

// New returns the offline feature. Install it with Router.UseOffline and
// Router.UseAvailable, and register it on the mux for its disco feature.
func New(cfg Config) *Service {
	if cfg.MaxStanzaSize <= 0 {
		cfg.MaxStanzaSize = stream.DefaultMaxStanzaSize
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		cfg.Log = logrus.NewEntry(l)
	}
	if d, err := jid.Parse(cfg.Domain); err == nil {
		cfg.Domain = d.Domainpart()
	}
	return &Service{cfg: cfg, log: cfg.Log, draining: map[string]*userLock{}}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Register announces offline message storage.
func (s *Service) Register(mux *router.Mux) { mux.Feature(Feature) }

// Offline implements router.OfflineHandler; the router prefers OfflineErr.
func (s *Service) Offline(ctx context.Context, to jid.JID, st *stream.Element) bool {
	return s.OfflineErr(ctx, to, st) == nil
}

// OfflineErr implements router.OfflineErrorer: it queues st (the
// recipient's copy, with its stanza-id if the recipient archived it) or
// says why not.
func (s *Service) OfflineErr(ctx context.Context, to jid.JID, st *stream.Element) error {
	switch st.Attr("type") {
	case "", "normal", "chat":
	default:
		return &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	c := archiving.Classify(st)
	switch {
	case c.NoStore:
		return &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	case !c.Content() && !c.Store:
		// Chat states and receipts for nobody: XEP-0085 §5.6 and
		// XEP-0160 say drop them quietly.
		return nil
	}
	_, err := s.cfg.Queue.Queue(ctx, to, st.AppendStanza(nil, stanza.NSClient))
	switch {
	case errors.Is(err, archive.ErrQueueFull):
		return &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "the recipient's offline queue is full"}
	case err != nil:
		s.log.WithError(err).WithField("user", to.Bare().String()).Error("offline: queue")
		return &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
	// The recipient may have come online between the router's look and
	// the append, and drained an empty queue: deliver now rather than at
	// the next login.
	for _, r := range s.cfg.Router.Resources(to) {
		if r.Available && r.Priority >= 0 {
			s.Available(ctx, r.JID)
			break
		}
	}
	return nil
}

// Available implements router.AvailableHandler: it delivers the user's
// queue to the resource full, each message with the time it was queued
// (XEP-0203), then forgets the delivered messages. It needs the user's
// keys unlocked, which the login did; a message that cannot be read is
// forgotten too, or it would stay in the queue for good.
func (s *Service) Available(ctx context.Context, full jid.JID) {
	user := full.Bare()
	unlock := s.lock(user.String())
	defer unlock()
	msgs, err := s.cfg.Queue.Drain(ctx, user)
	if err != nil {
		s.log.WithError(err).WithField("user", user.String()).Warn("offline: cannot read the queue")
		return
	}
	done := make([]uuid.UUID, 0, len(msgs))
	for _, m := range msgs {
		if m.Err != nil {
			s.log.WithError(m.Err).WithField("user", user.String()).WithField("id", m.ID.String()).Error("offline: unreadable queued message dropped")
			done = append(done, m.ID)
			continue
		}
		st, err := router.DecodeStanza(m.Stanza, s.cfg.MaxStanzaSize)
		if err != nil {
			s.log.WithError(err).WithField("user", user.String()).WithField("id", m.ID.String()).Error("offline: unparsable queued message dropped")
			done = append(done, m.ID)
			continue
		}
		st.AddChild(stream.NewElement(NSDelay, "delay", "from", s.cfg.Domain, "stamp", m.At.UTC().Format(stampLayout)))
		if !s.cfg.Router.SendToResourceWait(ctx, full, st) {
			// The session went away or stopped reading: the rest
			// waits for the next presence.
			break
		}
		done = append(done, m.ID)
	}
	if len(done) == 0 {
		return
	}
	if err := s.cfg.Queue.Delivered(ctx, user, done); err != nil {
		s.log.WithError(err).WithField("user", user.String()).Error("offline: recording delivery")
	}
}

// stampLayout is XEP-0082's DateTime in UTC with milliseconds.
const stampLayout = "2006-01-02T15:04:05.000Z"

func (s *Service) lock(u string) (unlock func()) {
	s.mu.Lock()
	l := s.draining[u]
	if l == nil {
		l = &userLock{}
		s.draining[u] = l
	}
	l.refs++
	s.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.draining, u)
		}
		s.mu.Unlock()
	}
}
