// Package mam answers Message Archive Management (XEP-0313, with the
// 'urn:xmpp:mam:2#extended' fields, flipped pages and archive metadata)
// over the user's encrypted archive, with result set management (XEP-0059)
// for paging, and the archiving preferences of XEP-0441 (the <prefs/> of
// XEP-0313's namespace).
//
// # The exchange
//
// A query is an IQ set that the user addresses to their own bare JID (or
// to nobody, which is the same). The matching messages go to the querying
// resource as <message/>s, then the IQ result closes the page:
//
//	C: <iq type='set' id='q1'>
//	     <query xmlns='urn:xmpp:mam:2' queryid='f27'>
//	       <x xmlns='jabber:x:data' type='submit'>
//	         <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>
//	         <field var='with'><value>romeo@example.net</value></field>
//	       </x>
//	       <set xmlns='http://jabber.org/protocol/rsm'><max>50</max><before/></set>
//	     </query>
//	   </iq>
//	S: <message to='juliet@example.org/balcony' from='juliet@example.org' id='0190a3c4-…'>
//	     <result xmlns='urn:xmpp:mam:2' queryid='f27' id='0190a3c4-…'>
//	       <forwarded xmlns='urn:xmpp:forward:0'>
//	         <delay xmlns='urn:xmpp:delay' stamp='2025-05-01T10:00:00.000Z'/>
//	         <message xmlns='jabber:client' from='romeo@example.net/orchard' to='juliet@example.org' type='chat'><body>…</body></message>
//	       </forwarded>
//	     </result>
//	   </message>
//	   … one <message/> per result …
//	S: <iq type='result' id='q1'>
//	     <fin xmlns='urn:xmpp:mam:2' complete='false'>
//	       <set xmlns='http://jabber.org/protocol/rsm'>
//	         <first index='70'>0190a3c4-…</first><last>0190a3d2-…</last><count>120</count>
//	       </set>
//	     </fin>
//	   </iq>
//
// The results are sent before the handler returns, and the router sends
// the IQ result after, on the same session queue, so the <fin/> always
// comes last (XEP-0313, "Query results").
//
// # Choices where the XEPs leave room
//
//   - A page is at most archive.Config.MaxPageSize (250 by default). A
//     larger <max/> is capped: the page is shorter, <fin complete='false'>
//     and RSM tell the client to page on, and the <fin/> carries
//     <capped xmlns='https://verlauf.im/protocol/mam' max='250'/> so that
//     the cap is visible, not silent.
//   - <max>0</max> returns no message, only <count/> (XEP-0059, "Getting the item count").
//   - An unknown form field gets feature-not-implemented, as XEP-0313
//     ("Retrieving form fields") requires; a malformed form, a wrong FORM_TYPE or a bad date
//     gets bad-request; an id (after, before, after-id, before-id, ids)
//     that is not in the archive, or is not an id at all, gets
//     item-not-found. Nothing is changed by a query, good or bad.
//   - RSM <index/> is accepted only as 0 (the first page); jumping to an
//     offset gets feature-not-implemented.
//   - A record that cannot be read (damaged bytes, or its data key was
//     shredded) is not skipped: it is delivered in its place as a result
//     whose forwarded stanza is a <message type='error'/> carrying
//     internal-server-error and <unreadable
//     xmlns='https://verlauf.im/protocol/mam' reason='damaged|key-deleted'/>,
//     and a warning is logged with the archive id (never content). The
//     rest of the page arrives as usual, and paging by id is unaffected.
//   - 'with' selects a conversation through the blind index, which keys
//     bare JIDs only: a full JID in 'with' selects the whole conversation
//     with that bare JID.
//   - Reading the archive needs the user's identity, which a password
//     login (SCRAM or PLAIN) unlocks for as long as the user has a session.
//     A session that could not unlock it gets not-authorized (auth): the
//     remedy is to log in again with the password, and retrying would not
//     help.
//   - Preferences are the user's own; <prefs/> get and set need no
//     unlocked identity.
package mam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces.
const (
	// NS is XEP-0313's namespace and disco feature.
	NS = "urn:xmpp:mam:2"
	// NSExtended is the disco feature of before-id, after-id, ids,
	// flipped pages and archive metadata.
	NSExtended = "urn:xmpp:mam:2#extended"
	// NSRSM is result set management (XEP-0059).
	NSRSM = "http://jabber.org/protocol/rsm"
	// NSData is data forms (XEP-0004).
	NSData = "jabber:x:data"
	// NSValidate is data forms validation (XEP-0122).
	NSValidate = "http://jabber.org/protocol/xdata-validate"
	// NSForward is stanza forwarding (XEP-0297).
	NSForward = "urn:xmpp:forward:0"
	// NSDelay is delayed delivery (XEP-0203).
	NSDelay = "urn:xmpp:delay"
	// NSVerlauf qualifies verlauf's own additions to MAM answers
	// (<capped/> in <fin/>, <unreadable/> in an error result).
	NSVerlauf = "https://verlauf.im/protocol/mam"
)

// AccountFeatures are the disco#info features that XEP-0313 ("Determining
// support") wants advertised on the user's bare JID, where the archive
// lives.
func AccountFeatures() []string { return []string{NS, NSExtended} }

// Archive is what the handler needs of the archive (*archive.Service).
type Archive interface {
	Query(ctx context.Context, user jid.JID, q archive.Query) (archive.Page, error)
	Prefs(ctx context.Context, user jid.JID) (domain.ArchivePrefs, error)
	SetPrefs(ctx context.Context, user jid.JID, def domain.ArchiveMode, always, never []jid.JID) (domain.ArchivePrefs, error)
}

// Sender delivers a stanza to one bound resource (*router.Router); it
// reports false if the resource is gone.
type Sender interface {
	SendToResource(ctx context.Context, full jid.JID, st *stream.Element) bool
}

// Config configures a Service.
type Config struct {
	// Archive is the archive service. Required.
	Archive Archive
	// Router sends the result messages to the querying resource.
	// Required.
	Router Sender
	// Log receives warnings about unreadable records (ids only, never
	// content). Nil discards them.
	Log *logrus.Entry
}

// Service answers MAM queries and preferences. It is safe for concurrent
// use.
type Service struct {
	cfg Config
}

// New returns a MAM service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Archive == nil:
		return nil, errors.New("mam: no archive")
	case cfg.Router == nil:
		return nil, errors.New("mam: no router")
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.Out = discard{}
		cfg.Log = logrus.NewEntry(l)
	}
	return &Service{cfg: cfg}, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Register installs the query, prefs and metadata handlers and the disco
// features on m.
func (s *Service) Register(m *router.Mux) {
	for _, local := range []string{"query", "prefs", "metadata"} {
		m.Handle(NS, local, s)
	}
	m.Feature(AccountFeatures()...)
}

// HandleIQ implements router.IQHandler.
func (s *Service) HandleIQ(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	user := iq.From.Bare()
	if !iq.To.Equal(user) {
		// XEP-0313, security considerations: forbidden for an archive
		// the sender may not read.
		return nil, stanza.Errorf(stanza.Cancel, stanza.Forbidden, "an archive belongs to its owner only")
	}
	switch local := iq.Payload.Name.Local; {
	case local == "query" && iq.Type == "get":
		return queryForm(), nil
	case local == "query" && iq.Type == "set":
		return s.query(ctx, iq, user)
	case local == "metadata" && iq.Type == "get":
		return s.metadata(ctx, user)
	case local == "prefs" && iq.Type == "get":
		p, err := s.cfg.Archive.Prefs(ctx, user)
		if err != nil {
			return nil, fmt.Errorf("mam: prefs of %s: %w", user, err)
		}
		return prefsElement(p), nil
	case local == "prefs" && iq.Type == "set":
		return s.setPrefs(ctx, user, iq.Payload)
	default:
		return nil, badRequest("<%s/> is not a MAM request of type %s", local, iq.Type)
	}
}

// query runs one MAM query: results to iq.From, then the <fin/>.
func (s *Service) query(ctx context.Context, iq router.IQ, user jid.JID) (*stream.Element, error) {
	r, err := parseQuery(iq.Payload)
	if err != nil {
		return nil, err
	}
	q := r.q
	if r.countOnly {
		// The archive reads max 0 as "the default page"; one message
		// tells whether the range is empty, and is not sent.
		q.Max = 1
	}
	page, err := s.cfg.Archive.Query(ctx, user, q)
	if err != nil {
		return nil, queryError(user, err)
	}
	if r.countOnly {
		return fin(archive.Page{Count: page.Count, Complete: len(page.Messages) == 0}, r, false), nil
	}
	queryID := iq.Payload.Attr("queryid")
	for _, m := range page.Messages {
		if !s.cfg.Router.SendToResource(ctx, iq.From, s.result(user, iq.From, queryID, m)) {
			break // the session is gone; so is the IQ result
		}
	}
	return fin(page, r, true), nil
}

// queryError maps the archive's errors to stanza errors.
func queryError(user jid.JID, err error) error {
	switch {
	case errors.Is(err, archive.ErrItemNotFound):
		return stanza.Errorf(stanza.Cancel, stanza.ItemNotFound, "an id of the query is not in the archive")
	case errors.Is(err, archive.ErrInvalid):
		return badRequest("the query is not valid")
	case errors.Is(err, archive.ErrLocked):
		return stanza.Errorf(stanza.Auth, stanza.NotAuthorized, "the archive opens with a password login (SCRAM or PLAIN); this session did not unlock it")
	default:
		return fmt.Errorf("mam: query of %s: %w", user, err)
	}
}

// fin builds the IQ result's <fin/>. withItems is false for a count-only
// answer, which has neither <first/> nor <last/>.
func fin(page archive.Page, r request, withItems bool) *stream.Element {
	q := r.q
	f := stream.NewElement(NS, "fin", "complete", strconv.FormatBool(page.Complete))
	set := add(f, stream.NewElement(NSRSM, "set"))
	if withItems && len(page.Messages) > 0 {
		first := add(set, stream.NewElement(NSRSM, "first"))
		// The index is known when only start, end and with bound the
		// result set, as they bound the count.
		if q.AfterID == uuid.Nil && q.BeforeID == uuid.Nil {
			idx := 0
			if q.Last {
				idx = page.Count - len(page.Messages)
			}
			first.SetAttr("index", strconv.Itoa(idx))
		}
		first.AddText(page.First.String())
		add(set, stream.NewElement(NSRSM, "last")).AddText(page.Last.String())
	}
	if !r.idFilter {
		add(set, stream.NewElement(NSRSM, "count")).AddText(strconv.Itoa(page.Count))
	}
	if page.Capped {
		f.AddChild(stream.NewElement(NSVerlauf, "capped", "max", strconv.Itoa(page.Max)))
	}
	return f
}

// result wraps one archived message for the querying resource.
func (s *Service) result(user, to jid.JID, queryID string, m archive.Message) *stream.Element {
	// The archive id is unique, so it serves as the wrapper's id too.
	msg := stream.NewElement(stanza.NSClient, "message", "to", to.String(), "from", user.String(), "id", m.ID.String())
	res := add(msg, stream.NewElement(NS, "result"))
	if queryID != "" {
		res.SetAttr("queryid", queryID)
	}
	res.SetAttr("id", m.ID.String())
	fwd := add(res, stream.NewElement(NSForward, "forwarded"))

	orig, err := m.Stanza, m.Err
	var el *stream.Element
	if err == nil {
		if el, err = parseStanza(orig); err != nil {
			err = fmt.Errorf("%w: archived stanza does not parse: %w", envelope.ErrCorrupt, err)
		}
	}
	at := m.At
	if err != nil {
		s.cfg.Log.WithError(err).WithFields(logrus.Fields{"user": user.String(), "archive_id": m.ID.String()}).
			Warn("mam: archived message cannot be read; sent as an error result")
		el = unreadable(err)
		at = idTime(m.ID)
	}
	fwd.AddChild(stream.NewElement(NSDelay, "delay", "stamp", formatDateTime(at)))
	fwd.AddChild(el)
	return msg
}

// unreadable is the forwarded stanza standing in for a record that cannot
// be read.
func unreadable(err error) *stream.Element {
	reason, text := "damaged", "this archived message is damaged and cannot be read"
	if errors.Is(err, archive.ErrKeyGone) {
		reason, text = "key-deleted", "the key of this archived message was deleted"
	}
	e := &stanza.Error{
		Type: stanza.Cancel, Condition: stanza.InternalServerError, Text: text,
		App: stream.NewElement(NSVerlauf, "unreadable", "reason", reason),
	}
	return stream.NewElement(stanza.NSClient, "message", "type", "error").AddChild(e.Element(stanza.NSClient))
}

// idTime is the time an archive id (UUIDv7) was drawn.
func idTime(id uuid.UUID) time.Time {
	sec, nsec := id.Time().UnixTime()
	return time.Unix(sec, nsec)
}

// metadata answers the archive metadata query of XEP-0313: the id and
// time of the first and last message, nothing for an empty archive.
func (s *Service) metadata(ctx context.Context, user jid.JID) (*stream.Element, error) {
	md := stream.NewElement(NS, "metadata")
	for _, side := range []struct {
		name string
		last bool
	}{{"start", false}, {"end", true}} {
		p, err := s.cfg.Archive.Query(ctx, user, archive.Query{Max: 1, Last: side.last})
		switch {
		case err != nil:
			return nil, queryError(user, err)
		case len(p.Messages) == 0:
			return md, nil
		}
		m := p.Messages[0]
		at := m.At
		if m.Err != nil {
			at = idTime(m.ID)
		}
		md.AddChild(stream.NewElement(NS, side.name, "id", m.ID.String(), "timestamp", formatDateTime(at)))
	}
	return md, nil
}

// parseStanza parses an archived stanza. The stream reader parses only
// inside a stream; the stored XML declares its own namespace.
func parseStanza(b []byte) (*stream.Element, error) {
	const header = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`
	r := stream.NewReader(io.MultiReader(strings.NewReader(header), bytes.NewReader(b)), stream.Limits{MaxStanzaSize: len(b) + 1})
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	return r.Next()
}
