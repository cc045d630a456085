// Package adhoc offers ad-hoc commands (XEP-0050) at the server's JID.
// There is one: "Message history: on/off", for clients without a
// preferences screen for the archive. It turns the user's XEP-0441 default
// to always (on) or never (off) through the archive's preferences.
//
// A command runs in a session:
//
//	C: <iq type='set' to='example.org' id='h1'>
//	     <command xmlns='http://jabber.org/protocol/commands' node='history' action='execute'/>
//	   </iq>
//	S: <iq type='result' from='example.org' id='h1'>
//	     <command xmlns='http://jabber.org/protocol/commands' node='history' sessionid='…' status='executing'>
//	       <actions execute='complete'><complete/></actions>
//	       <x xmlns='jabber:x:data' type='form'>
//	         <title>Message history</title>
//	         <instructions>…</instructions>
//	         <field var='history' type='boolean' label='Keep message history'><value>0</value></field>
//	       </x>
//	     </command>
//	   </iq>
//	C: <iq type='set' to='example.org' id='h2'>
//	     <command xmlns='http://jabber.org/protocol/commands' node='history' sessionid='…' action='complete'>
//	       <x xmlns='jabber:x:data' type='submit'><field var='history'><value>1</value></field></x>
//	     </command>
//	   </iq>
//	S: <iq type='result' from='example.org' id='h2'>
//	     <command xmlns='http://jabber.org/protocol/commands' node='history' sessionid='…' status='completed'>
//	       <note type='info'>Message history is on. …</note>
//	     </command>
//	   </iq>
//
// "On" sets the default to always and keeps the user's never list (the
// contacts they excluded stay excluded). "Off" sets the default to never
// and empties the always list, so that nothing new is archived at all;
// the never list is kept. Messages archived before stay in the archive.
//
// Sessions live in memory, bound to the requesting full JID, and expire
// (SessionTTL); a session that is not this resource's, or unknown, gets
// bad-request with <bad-sessionid/>, an expired one not-allowed with
// <session-expired/>, as XEP-0050 §4.6 lists.
//
// Discovery of the commands (disco#items and disco#info on the node
// 'http://jabber.org/protocol/commands' and on each command's node) is
// answered by DiscoNode, which the disco service calls for the nodes of
// the server's JID.
package adhoc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces and nodes.
const (
	// NS is XEP-0050's namespace, its disco feature and the node that
	// lists the commands.
	NS = "http://jabber.org/protocol/commands"
	// NSData is data forms (XEP-0004).
	NSData = "jabber:x:data"
	// NSInfo and NSItems are service discovery (XEP-0030).
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
	// NodeHistory is the node of the "Message history: on/off" command.
	NodeHistory = "history"
)

// Defaults of Config.
const (
	// DefaultSessionTTL is how long a command session waits for its
	// next step.
	DefaultSessionTTL = 10 * time.Minute
	// DefaultMaxSessions bounds the sessions held in memory.
	DefaultMaxSessions = 10_000
)

// historyName is the command's name in listings.
const historyName = "Message history: on/off"

// Prefs is what the history command needs of the archive
// (*archive.Service).
type Prefs interface {
	Prefs(ctx context.Context, user jid.JID) (domain.ArchivePrefs, error)
	SetPrefs(ctx context.Context, user jid.JID, def domain.ArchiveMode, always, never []jid.JID) (domain.ArchivePrefs, error)
}

// Config configures a Service.
type Config struct {
	// Domain is the server's domain, the JID that offers the commands.
	// Required.
	Domain string
	// Prefs is the archive's preferences. Required.
	Prefs Prefs
	// Clock times sessions out (domain.SystemClock).
	Clock domain.Clock
	// SessionTTL is how long a session waits (DefaultSessionTTL).
	SessionTTL time.Duration
	// MaxSessions bounds the open sessions (DefaultMaxSessions); past it
	// a new execute gets resource-constraint.
	MaxSessions int
}

// Service runs ad-hoc commands. It is safe for concurrent use.
type Service struct {
	cfg Config

	mu       sync.Mutex
	sessions map[string]session
}

// session is one command in progress.
type session struct {
	owner   string // the full JID that started it
	node    string
	expires time.Time
}

// New returns an ad-hoc commands service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Domain == "":
		return nil, errors.New("adhoc: no domain")
	case cfg.Prefs == nil:
		return nil, errors.New("adhoc: no archive preferences")
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	return &Service{cfg: cfg, sessions: map[string]session{}}, nil
}

// Register installs the command handler and the disco feature on m.
func (s *Service) Register(m *router.Mux) {
	m.Handle(NS, "command", s)
	m.Feature(NS)
}

// Errors of XEP-0050 §4.6: a stanza error with the commands namespace's
// specific condition.
func cmdError(t stanza.ErrorType, c stanza.Condition, specific, text string) *stanza.Error {
	return &stanza.Error{Type: t, Condition: c, Text: text, App: stream.NewElement(NS, specific)}
}

// HandleIQ implements router.IQHandler.
func (s *Service) HandleIQ(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	if iq.To.Localpart() != "" || iq.To.Domainpart() != s.cfg.Domain {
		// Only the server offers commands; an account's bare JID
		// does not.
		return nil, stanza.Errorf(stanza.Cancel, stanza.ItemNotFound, "no commands at %s", iq.To)
	}
	if iq.Type != "set" {
		return nil, stanza.Errorf(stanza.Modify, stanza.BadRequest, "commands are executed with set")
	}
	if !s.local(iq.From) {
		return nil, stanza.Errorf(stanza.Cancel, stanza.Forbidden, "commands are for this server's users")
	}
	cmd := iq.Payload
	node := cmd.Attr("node")
	if node != NodeHistory {
		return nil, stanza.Errorf(stanza.Cancel, stanza.ItemNotFound, "no command %q", node)
	}
	action := cmd.Attr("action")
	switch action {
	case "", "execute", "complete", "cancel":
	case "next", "prev":
		return nil, cmdError(stanza.Modify, stanza.BadRequest, "bad-action", "the command has a single stage")
	default:
		return nil, cmdError(stanza.Modify, stanza.BadRequest, "malformed-action", fmt.Sprintf("no action %q", action))
	}

	sid := cmd.Attr("sessionid")
	if sid == "" {
		if action != "" && action != "execute" {
			return nil, cmdError(stanza.Modify, stanza.BadRequest, "bad-sessionid", "only execute starts a command")
		}
		return s.start(ctx, iq.From, node)
	}
	if err := s.check(iq.From, node, sid); err != nil {
		return nil, err
	}
	if x := cmd.Child("x", NSData); action == "cancel" || (x != nil && x.Attr("type") == "cancel") {
		s.end(sid)
		return stream.NewElement(NS, "command", "node", node, "sessionid", sid, "status", "canceled"), nil
	}
	// execute with a session is the stage's default action: complete.
	// A form that does not parse leaves the session open for another
	// try.
	res, err := s.complete(ctx, iq.From, node, sid, cmd)
	if err == nil {
		s.end(sid)
	}
	return res, err
}

// local reports whether from is a user of this server.
func (s *Service) local(from jid.JID) bool {
	return from.Localpart() != "" && from.Domainpart() == s.cfg.Domain
}

// start opens a session and answers with the form.
func (s *Service) start(ctx context.Context, from jid.JID, node string) (*stream.Element, error) {
	p, err := s.cfg.Prefs.Prefs(ctx, from.Bare())
	if err != nil {
		return nil, fmt.Errorf("adhoc: prefs of %s: %w", from.Bare(), err)
	}
	sid := uuid.NewString()
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	for id, ss := range s.sessions {
		if !now.Before(ss.expires) {
			delete(s.sessions, id)
		}
	}
	full := len(s.sessions) >= s.cfg.MaxSessions
	if !full {
		s.sessions[sid] = session{owner: from.String(), node: node, expires: now.Add(s.cfg.SessionTTL)}
	}
	s.mu.Unlock()
	if full {
		return nil, stanza.Errorf(stanza.Wait, stanza.ResourceConstraint, "too many commands in progress")
	}
	cmd := stream.NewElement(NS, "command", "node", node, "sessionid", sid, "status", "executing")
	actions := stream.NewElement(NS, "actions", "execute", "complete").AddChild(stream.NewElement(NS, "complete"))
	return cmd.AddChild(actions).AddChild(historyForm(p)), nil
}

// check reports whether sid is a live session of node started by from,
// and forgets it if it expired.
func (s *Service) check(from jid.JID, node, sid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[sid]
	if !ok || ss.owner != from.String() || ss.node != node {
		return cmdError(stanza.Modify, stanza.BadRequest, "bad-sessionid", "no such command session")
	}
	if !s.cfg.Clock.Now().Before(ss.expires) {
		delete(s.sessions, sid)
		return cmdError(stanza.Cancel, stanza.NotAllowed, "session-expired", "the command session expired; start again")
	}
	return nil
}

// end forgets session sid.
func (s *Service) end(sid string) {
	s.mu.Lock()
	delete(s.sessions, sid)
	s.mu.Unlock()
}

// historyForm is the form of the history command, showing the current
// state.
func historyForm(p domain.ArchivePrefs) *stream.Element {
	x := stream.NewElement(NSData, "x", "type", "form")
	x.AddChild(stream.NewElement(NSData, "title").AddText("Message history"))
	instr := "When history is on, your conversations are archived, encrypted so that only your own login opens them, " +
		"and your other devices can read them. When it is off, nothing new is archived; what was archived before stays."
	if p.Default == domain.ArchiveRoster {
		instr += " History is now kept for contacts in your roster only; turning it on keeps it for everyone."
	}
	x.AddChild(stream.NewElement(NSData, "instructions").AddText(instr))
	cur := "0"
	if p.Default == domain.ArchiveAlways {
		cur = "1"
	}
	return x.AddChild(stream.NewElement(NSData, "field", "var", "history", "type", "boolean", "label", "Keep message history").
		AddChild(stream.NewElement(NSData, "value").AddText(cur)))
}

// complete applies the submitted form.
func (s *Service) complete(ctx context.Context, from jid.JID, node, sid string, cmd *stream.Element) (*stream.Element, error) {
	on, err := parseHistory(cmd.Child("x", NSData))
	if err != nil {
		return nil, err
	}
	user := from.Bare()
	p, err := s.cfg.Prefs.Prefs(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("adhoc: prefs of %s: %w", user, err)
	}
	never, err := parseJIDs(p.Never)
	if err != nil {
		return nil, fmt.Errorf("adhoc: stored prefs of %s: %w", user, err)
	}
	def, always, note := domain.ArchiveNever, []jid.JID(nil),
		"Message history is off: new messages are not archived. Messages archived before stay in the archive."
	if on {
		if always, err = parseJIDs(p.Always); err != nil {
			return nil, fmt.Errorf("adhoc: stored prefs of %s: %w", user, err)
		}
		def, note = domain.ArchiveAlways,
			"Message history is on: your conversations are archived, encrypted, and your other devices can read them."
		if len(never) > 0 {
			note += fmt.Sprintf(" %d contacts you excluded stay excluded.", len(never))
		}
	}
	if _, err := s.cfg.Prefs.SetPrefs(ctx, user, def, always, never); err != nil {
		return nil, fmt.Errorf("adhoc: set prefs of %s: %w", user, err)
	}
	res := stream.NewElement(NS, "command", "node", node, "sessionid", sid, "status", "completed")
	return res.AddChild(stream.NewElement(NS, "note", "type", "info").AddText(note)), nil
}

// parseHistory reads the boolean 'history' of the submitted form.
func parseHistory(x *stream.Element) (bool, error) {
	bad := func(text string) error {
		return cmdError(stanza.Modify, stanza.BadRequest, "bad-payload", text)
	}
	if x == nil || x.Attr("type") != "submit" {
		return false, bad("the command needs its form, submitted")
	}
	var values []string
	found := false
	for f := range x.Children() {
		if f.Name.Space != NSData || f.Name.Local != "field" || f.Attr("var") != "history" {
			continue
		}
		if found {
			return false, bad("field history appears twice")
		}
		found = true
		for v := range f.Children() {
			if v.Name.Space == NSData && v.Name.Local == "value" {
				values = append(values, strings.TrimSpace(v.Text()))
			}
		}
	}
	if len(values) != 1 {
		return false, bad("field history takes one boolean value")
	}
	// XEP-0004 §3.3: boolean is 0, 1, false or true.
	switch values[0] {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, bad(fmt.Sprintf("history: %q is not a boolean", values[0]))
}

func parseJIDs(ss []string) ([]jid.JID, error) {
	out := make([]jid.JID, 0, len(ss))
	for _, s := range ss {
		j, err := domain.ParseJID(s)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// DiscoNode answers disco#info or disco#items (iq.Payload says which) for
// a node of the server's JID: the command list node NS and the commands'
// own nodes (XEP-0050 §2). ok is false for a node that is not one of
// them, which the disco service then answers itself.
func (s *Service) DiscoNode(_ context.Context, iq router.IQ, node string) (*stream.Element, bool, error) {
	if iq.To.Localpart() != "" || (node != NS && node != NodeHistory) {
		return nil, false, nil
	}
	info := iq.Payload.Name.Space == NSInfo
	q := stream.NewElement(iq.Payload.Name.Space, "query", "node", node)
	switch {
	case node == NS && info:
		q.AddChild(stream.NewElement(NSInfo, "identity", "category", "automation", "type", "command-list", "name", "Commands"))
	case node == NS:
		// Listed to local users only: to anyone else they are useless.
		if s.local(iq.From) {
			q.AddChild(stream.NewElement(NSItems, "item", "jid", s.cfg.Domain, "node", NodeHistory, "name", historyName))
		}
	case info:
		q.AddChild(stream.NewElement(NSInfo, "identity", "category", "automation", "type", "command-node", "name", historyName))
		q.AddChild(stream.NewElement(NSInfo, "feature", "var", NS))
		q.AddChild(stream.NewElement(NSInfo, "feature", "var", NSData))
	}
	// A command node has no items: the empty answer.
	return q, true, nil
}
