package domain

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"mellium.im/xmpp/jid"
)

// The roster (RFC 6121 §2) and the presence subscription state machine
// (RFC 6121 §3 and Appendix A) live in one aggregate, stream RosterStream,
// because every subscription change is a roster change: both must be
// decided against one consistent state under one expected revision.
//
// Two kinds of records make up the state:
//
//   - items, the roster the user sees (roster get, roster pushes), with
//     their subscription (none/to/from/both), ask="subscribe" (pending
//     out) and approved (pre-approval, §3.4);
//   - inbound requests (pending in): a contact asked to see the user's
//     presence and the user has not answered. RFC 6121 keeps this state on
//     the server and out of the roster (there is no "pending in" attribute,
//     and a request from a stranger creates no item), but the server must
//     redeliver the request at each login until the user answers (§3.1.3).
//
// # Roster versioning (XEP-0237)
//
// The roster version is an explicit counter carried in the events, not the
// stream revision. Every RosterItemSet and RosterItemRemoved carries Ver,
// the roster's version after that change, which is the previous version
// plus one; request events do not change the roster the client sees and do
// not bump it. The wire "ver" attribute is Ver in decimal. Projections keep
// the Ver of each item's last change (and of removals, as tombstones) so
// that "changes since ver N" is a range query.
//
// Why not the stream revision: it also counts request events, which would
// make clients re-fetch for nothing; and an explicit number survives export
// and import into another store, where revisions start over.
//
// # Rules and effects
//
// Each command returns a RosterOutcome: the events to record and what the
// router must do about it (forward the stanza, push the roster change,
// answer the contact, send presence). The outcome is a plain value: the
// rules decide, the front end acts, and only after the events are durable.

// Subscription is the value of a roster item's subscription attribute.
type Subscription string

// Subscription states of RFC 6121 §2.1.2.5, from the user's point of view:
// "to" means the user receives the contact's presence, "from" means the
// contact receives the user's.
const (
	SubscriptionNone Subscription = "none"
	SubscriptionTo   Subscription = "to"
	SubscriptionFrom Subscription = "from"
	SubscriptionBoth Subscription = "both"
)

func (s Subscription) hasTo() bool   { return s == SubscriptionTo || s == SubscriptionBoth }
func (s Subscription) hasFrom() bool { return s == SubscriptionFrom || s == SubscriptionBoth }

func subscriptionOf(to, from bool) Subscription {
	switch {
	case to && from:
		return SubscriptionBoth
	case to:
		return SubscriptionTo
	case from:
		return SubscriptionFrom
	default:
		return SubscriptionNone
	}
}

// RosterItem is one contact of the roster as the client sees it.
type RosterItem struct {
	// JID is the contact's canonical bare JID (a domain alone for gateways).
	JID  string `json:"jid"`
	Name string `json:"name,omitempty"`
	// Groups is in the order the client gave, without duplicates.
	Groups       []string     `json:"groups,omitempty"`
	Subscription Subscription `json:"subscription"`
	// Ask is true while the user's subscription request is pending
	// (ask='subscribe', the "Pending Out" of RFC 6121).
	Ask bool `json:"ask,omitempty"`
	// Approved is true when the user pre-approved the contact's future
	// request (RFC 6121 §3.4).
	Approved bool `json:"approved,omitempty"`
}

func (it RosterItem) clone() RosterItem {
	it.Groups = slices.Clone(it.Groups)
	return it
}

func (it RosterItem) equal(o RosterItem) bool {
	return it.JID == o.JID && it.Name == o.Name && slices.Equal(it.Groups, o.Groups) &&
		it.Subscription == o.Subscription && it.Ask == o.Ask && it.Approved == o.Approved
}

// RosterItemSet records the full new state of one roster item (created or
// changed). A snapshot rather than a delta, so a projection only upserts.
//
// Schema v2 stores Groups as an array; v1 stored them as one
// comma-separated "group" string, which could not hold a group name with a
// comma. Package migrations upcasts v1.
type RosterItemSet struct {
	RosterItem
	// Ver is the roster version after this change.
	Ver uint64 `json:"ver"`
}

// EventType implements Payload.
func (RosterItemSet) EventType() string { return TypeRosterItemSet }

// EventSchemaVersion implements Payload.
func (RosterItemSet) EventSchemaVersion() int { return 2 }

// RosterItemRemoved records the removal of a roster item.
type RosterItemRemoved struct {
	JID string `json:"jid"`
	// Ver is the roster version after this change.
	Ver uint64 `json:"ver"`
}

// EventType implements Payload.
func (RosterItemRemoved) EventType() string { return TypeRosterItemRemoved }

// EventSchemaVersion implements Payload.
func (RosterItemRemoved) EventSchemaVersion() int { return 1 }

// RosterRequestReceived records an inbound subscription request waiting
// for the user's answer (Pending In). Its status text is not recorded: it
// is a message from a third party and the log keeps no messages in clear.
type RosterRequestReceived struct {
	JID string `json:"jid"`
}

// EventType implements Payload.
func (RosterRequestReceived) EventType() string { return TypeRosterRequestReceived }

// EventSchemaVersion implements Payload.
func (RosterRequestReceived) EventSchemaVersion() int { return 1 }

// RosterRequestCleared records that an inbound request is no longer
// pending: approved, denied, withdrawn or removed with the item.
type RosterRequestCleared struct {
	JID string `json:"jid"`
}

// EventType implements Payload.
func (RosterRequestCleared) EventType() string { return TypeRosterRequestCleared }

// EventSchemaVersion implements Payload.
func (RosterRequestCleared) EventSchemaVersion() int { return 1 }

// SubscriptionStanza is the type attribute of a subscription-related
// presence stanza.
type SubscriptionStanza string

// The four subscription stanzas of RFC 6121 §3.
const (
	StanzaSubscribe    SubscriptionStanza = "subscribe"
	StanzaSubscribed   SubscriptionStanza = "subscribed"
	StanzaUnsubscribe  SubscriptionStanza = "unsubscribe"
	StanzaUnsubscribed SubscriptionStanza = "unsubscribed"
)

// PresenceAction is presence the router must send to the contact from all
// of the user's available resources after a change of the "from" half.
type PresenceAction int

const (
	// PresenceNone: nothing to send.
	PresenceNone PresenceAction = iota
	// PresenceSendAvailable: the contact just gained a subscription to
	// the user's presence; send the user's current presence (§3.1.5).
	PresenceSendAvailable
	// PresenceSendUnavailable: the contact just lost it; send unavailable
	// presence so its clients stop showing the user online (§3.2, §3.3).
	PresenceSendUnavailable
)

// RosterPush is a roster change to push to the user's interested resources
// (RFC 6121 §2.1.6), with the roster version after it.
type RosterPush struct {
	Item    RosterItem
	Removed bool
	Ver     uint64
}

// RosterOutcome is what a roster command decided.
type RosterOutcome struct {
	// Events to append to RosterStream, in order. Empty when nothing
	// changed.
	Events []Payload
	// Forward: for an outbound stanza, route it to the contact (stamped
	// with the user's bare JID); for an inbound stanza, deliver it to the
	// user's available resources. An inbound subscribe that is forwarded
	// is also recorded as a pending request, so a user with no available
	// resource gets it at the next login.
	Forward bool
	// Push is the roster change to push, nil if the roster the client sees
	// did not change.
	Push *RosterPush
	// Replies are subscription stanzas the server sends to the contact
	// from the user's bare JID on the user's behalf: the automatic
	// "subscribed" of §3.1.3/§3.4, the "unsubscribe"/"unsubscribed" of a
	// roster remove (§2.5.3).
	Replies []SubscriptionStanza
	// Presence is presence to send to the contact from the user.
	Presence PresenceAction
}

// Roster errors, matched with errors.Is or errors.As.
var (
	ErrRosterItemNotFound = errors.New("domain: roster item not found")
	ErrInvalidRosterItem  = errors.New("domain: invalid roster item")
	ErrRosterFull         = errors.New("domain: roster full")
)

// RosterFullError is returned when a command would take the roster past
// its size limit. errors.Is(err, ErrRosterFull) holds.
type RosterFullError struct {
	Contact string
	Max     int
}

func (e *RosterFullError) Error() string {
	return fmt.Sprintf("domain: roster full (%d entries): cannot add %s", e.Max, e.Contact)
}

// Is makes errors.Is(err, ErrRosterFull) true.
func (e *RosterFullError) Is(target error) bool { return target == ErrRosterFull }

// MaxRosterTextLen bounds item names and group names in bytes; RFC 6121
// §2.3.3 lets a server refuse longer ones with not-acceptable.
const MaxRosterTextLen = 1023

// SubscriptionState is the combined state of RFC 6121 Appendix A for one
// contact.
type SubscriptionState struct {
	Subscription Subscription
	PendingOut   bool
	PendingIn    bool
}

// String names the state as Appendix A does, e.g. "None+PendingOut+PendingIn".
func (s SubscriptionState) String() string {
	out := map[Subscription]string{
		SubscriptionNone: "None", SubscriptionTo: "To",
		SubscriptionFrom: "From", SubscriptionBoth: "Both",
	}[s.Subscription]
	if out == "" {
		out = "None"
	}
	if s.PendingOut {
		out += "+PendingOut"
	}
	if s.PendingIn {
		out += "+PendingIn"
	}
	return out
}

// Roster is the state of one user's roster, folded from RosterStream.
//
// The zero value is an empty roster with no size limit. Apply updates the
// receiver's maps in place for speed when folding long streams, so treat
// the state passed to Apply as consumed (like a slice passed to append);
// the decision methods never modify the receiver.
type Roster struct {
	max      int
	ver      uint64
	items    map[string]RosterItem
	requests map[string]bool
}

// NewRoster returns an empty roster that holds at most maxItems entries
// (items plus pending requests from contacts not in the roster, so that
// strangers cannot grow it without bound either); 0 means no limit.
func NewRoster(maxItems int) Roster { return Roster{max: maxItems} }

// MaxItems is the roster's size limit, 0 for none.
func (r Roster) MaxItems() int { return r.max }

// Ver is the roster version (XEP-0237), 0 for a roster never changed.
func (r Roster) Ver() uint64 { return r.ver }

// Item returns the roster item for a contact.
func (r Roster) Item(contact jid.JID) (RosterItem, bool) {
	it, ok := r.items[contact.Bare().String()]
	return it.clone(), ok
}

// Items returns the roster sorted by JID (a roster get).
func (r Roster) Items() []RosterItem {
	out := make([]RosterItem, 0, len(r.items))
	for _, it := range r.items {
		out = append(out, it.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JID < out[j].JID })
	return out
}

// PendingRequests returns the bare JIDs whose subscription requests wait
// for the user's answer, sorted; the server redelivers them at login.
func (r Roster) PendingRequests() []string {
	out := make([]string, 0, len(r.requests))
	for k := range r.requests {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// State returns the Appendix A state of a contact.
func (r Roster) State(contact jid.JID) SubscriptionState {
	return r.state(contact.Bare().String())
}

func (r Roster) state(key string) SubscriptionState {
	it, ok := r.items[key]
	st := SubscriptionState{Subscription: SubscriptionNone, PendingIn: r.requests[key]}
	if ok {
		st.Subscription = it.Subscription
		st.PendingOut = it.Ask
	}
	return st
}

// size counts entries against the limit: items, plus requests from
// contacts that have no item.
func (r Roster) size() int {
	n := len(r.items)
	for k := range r.requests {
		if _, ok := r.items[k]; !ok {
			n++
		}
	}
	return n
}

// known reports whether key already counts against the limit.
func (r Roster) known(key string) bool {
	_, ok := r.items[key]
	return ok || r.requests[key]
}

func (r Roster) checkRoom(key string) error {
	if r.max > 0 && !r.known(key) && r.size() >= r.max {
		return &RosterFullError{Contact: key, Max: r.max}
	}
	return nil
}

func contactKey(contact jid.JID) (string, error) {
	if isZeroJID(contact) {
		return "", fmt.Errorf("%w: no contact JID", ErrInvalidJID)
	}
	return contact.Bare().String(), nil
}

// Outbound decides a subscription stanza the user sends to contact
// (RFC 6121 Appendix A.2, and §3.4 for pre-approval). A resource on
// contact is ignored: subscriptions are between bare JIDs.
func (r Roster) Outbound(contact jid.JID, t SubscriptionStanza) (RosterOutcome, error) {
	key, err := contactKey(contact)
	if err != nil {
		return RosterOutcome{}, err
	}
	st := r.state(key)
	item, listed := r.items[key]
	next := st
	approved := listed && item.Approved
	var out RosterOutcome

	switch t {
	case StanzaSubscribe:
		// A.2.1: always routed, so that a contact whose server lost state
		// can answer again; the state only gains Pending Out where the
		// user is not subscribed yet.
		out.Forward = true
		if !st.Subscription.hasTo() {
			next.PendingOut = true
		}
	case StanzaUnsubscribe:
		// A.2.2: always routed; the "to" half and Pending Out go.
		out.Forward = true
		next.PendingOut = false
		next.Subscription = subscriptionOf(false, st.Subscription.hasFrom())
	case StanzaSubscribed:
		// A.2.3: approves a pending request; without one it is a
		// pre-approval (§3.4) and is not routed.
		switch {
		case st.PendingIn:
			out.Forward = true
			next.PendingIn = false
			next.Subscription = subscriptionOf(st.Subscription.hasTo(), true)
			approved = false
			out.Presence = PresenceSendAvailable
		case !st.Subscription.hasFrom():
			approved = true
		}
	case StanzaUnsubscribed:
		// A.2.4: denies a pending request or cancels the contact's
		// subscription; otherwise it only cancels a pre-approval.
		switch {
		case st.PendingIn || st.Subscription.hasFrom():
			out.Forward = true
			next.PendingIn = false
			next.Subscription = subscriptionOf(st.Subscription.hasTo(), false)
			if st.Subscription.hasFrom() {
				out.Presence = PresenceSendUnavailable
			}
		default:
			approved = false
		}
	default:
		return RosterOutcome{}, fmt.Errorf("domain: unknown subscription stanza %q", t)
	}
	return r.settle(key, st, next, approved, out)
}

// Inbound decides a subscription stanza the contact sends to the user
// (RFC 6121 Appendix A.3, and §3.4 for pre-approval). The router calls it
// on the user's roster when the stanza arrives from a local user or from
// s2s.
func (r Roster) Inbound(contact jid.JID, t SubscriptionStanza) (RosterOutcome, error) {
	key, err := contactKey(contact)
	if err != nil {
		return RosterOutcome{}, err
	}
	st := r.state(key)
	item, listed := r.items[key]
	next := st
	approved := listed && item.Approved
	var out RosterOutcome

	switch t {
	case StanzaSubscribe:
		switch {
		case st.Subscription.hasFrom():
			// A.3.1: already subscribed; answer for the user (§3.1.3).
			out.Replies = []SubscriptionStanza{StanzaSubscribed}
		case st.PendingIn:
			// A.3.1: a request is already waiting; nothing new.
		case approved:
			// §3.4: pre-approved, so the server approves for the user
			// without bothering them.
			next.Subscription = subscriptionOf(st.Subscription.hasTo(), true)
			approved = false
			out.Replies = []SubscriptionStanza{StanzaSubscribed}
			out.Presence = PresenceSendAvailable
		default:
			out.Forward = true
			next.PendingIn = true
		}
	case StanzaUnsubscribe:
		// A.3.2: the contact withdraws its request or its subscription.
		if st.PendingIn || st.Subscription.hasFrom() {
			out.Forward = true
			next.PendingIn = false
			next.Subscription = subscriptionOf(st.Subscription.hasTo(), false)
			if st.Subscription.hasFrom() {
				out.Presence = PresenceSendUnavailable
			}
		}
	case StanzaSubscribed:
		// A.3.3: only answers a request of the user's; unsolicited
		// approvals are dropped.
		if st.PendingOut {
			out.Forward = true
			next.PendingOut = false
			next.Subscription = subscriptionOf(true, st.Subscription.hasFrom())
		}
	case StanzaUnsubscribed:
		// A.3.4: the contact denies the user's request or cancels the
		// user's subscription.
		if st.PendingOut || st.Subscription.hasTo() {
			out.Forward = true
			next.PendingOut = false
			next.Subscription = subscriptionOf(false, st.Subscription.hasFrom())
		}
	default:
		return RosterOutcome{}, fmt.Errorf("domain: unknown subscription stanza %q", t)
	}
	return r.settle(key, st, next, approved, out)
}

// settle turns a state transition into events and the roster push. An item
// is created only when something visible becomes non-default (a
// subscription, ask or approved): a request from a stranger alone creates
// no item.
func (r Roster) settle(key string, st, next SubscriptionState, approved bool, out RosterOutcome) (RosterOutcome, error) {
	if next.PendingIn != st.PendingIn {
		if next.PendingIn {
			if err := r.checkRoom(key); err != nil {
				return RosterOutcome{}, err
			}
			out.Events = append(out.Events, RosterRequestReceived{JID: key})
		} else {
			out.Events = append(out.Events, RosterRequestCleared{JID: key})
		}
	}

	old, listed := r.items[key]
	item := old.clone()
	if !listed {
		item = RosterItem{JID: key, Subscription: SubscriptionNone}
	}
	item.Subscription = next.Subscription
	item.Ask = next.PendingOut
	item.Approved = approved && !next.Subscription.hasFrom()

	changed := listed && !item.equal(old)
	created := !listed && (item.Subscription != SubscriptionNone || item.Ask || item.Approved)
	if created {
		if err := r.checkRoom(key); err != nil {
			return RosterOutcome{}, err
		}
	}
	if changed || created {
		ev := RosterItemSet{RosterItem: item, Ver: r.ver + 1}
		out.Events = append(out.Events, ev)
		out.Push = &RosterPush{Item: item.clone(), Ver: ev.Ver}
	}
	return out, nil
}

// SetItem decides a roster set from the user's client (RFC 6121 §2.3):
// create the item with subscription none, or change its name and groups.
// The subscription, ask and approved of an existing item are kept; clients
// cannot set them (§2.1.2.5). A set that changes nothing records nothing
// and pushes nothing. contact must be a bare JID.
func (r Roster) SetItem(contact jid.JID, name string, groups []string) (RosterOutcome, error) {
	key, err := contactKey(contact)
	if err != nil {
		return RosterOutcome{}, err
	}
	if contact.Resourcepart() != "" {
		return RosterOutcome{}, fmt.Errorf("%w: roster item %q has a resource", ErrInvalidRosterItem, contact)
	}
	if err := validateRosterText(name, groups); err != nil {
		return RosterOutcome{}, err
	}
	old, listed := r.items[key]
	if !listed {
		if err := r.checkRoom(key); err != nil {
			return RosterOutcome{}, err
		}
		old = RosterItem{JID: key, Subscription: SubscriptionNone}
	}
	item := old.clone()
	item.Name = name
	item.Groups = slices.Clone(groups)
	if len(item.Groups) == 0 {
		item.Groups = nil
	}
	if listed && item.equal(old) {
		return RosterOutcome{}, nil
	}
	ev := RosterItemSet{RosterItem: item, Ver: r.ver + 1}
	return RosterOutcome{
		Events: []Payload{ev},
		Push:   &RosterPush{Item: item.clone(), Ver: ev.Ver},
	}, nil
}

func validateRosterText(name string, groups []string) error {
	if len(name) > MaxRosterTextLen {
		return fmt.Errorf("%w: name longer than %d bytes", ErrInvalidRosterItem, MaxRosterTextLen)
	}
	seen := make(map[string]bool, len(groups))
	for _, g := range groups {
		switch {
		case g == "":
			return fmt.Errorf("%w: empty group name", ErrInvalidRosterItem)
		case len(g) > MaxRosterTextLen:
			return fmt.Errorf("%w: group name longer than %d bytes", ErrInvalidRosterItem, MaxRosterTextLen)
		case seen[g]:
			return fmt.Errorf("%w: duplicate group %q", ErrInvalidRosterItem, g)
		}
		seen[g] = true
	}
	return nil
}

// RemoveItem decides a roster remove (RFC 6121 §2.5): the item goes, and
// with it every subscription in both directions. The outcome's Replies
// carry the "unsubscribe" (if the user was subscribed to the contact or had
// asked to be) and "unsubscribed" (if the contact was subscribed to the user
// or had asked to be) that §2.5.3 requires the server to send.
func (r Roster) RemoveItem(contact jid.JID) (RosterOutcome, error) {
	key, err := contactKey(contact)
	if err != nil {
		return RosterOutcome{}, err
	}
	old, listed := r.items[key]
	if !listed {
		return RosterOutcome{}, fmt.Errorf("remove %s: %w", key, ErrRosterItemNotFound)
	}
	st := r.state(key)
	var out RosterOutcome
	if st.Subscription.hasTo() || st.PendingOut {
		out.Replies = append(out.Replies, StanzaUnsubscribe)
	}
	if st.Subscription.hasFrom() || st.PendingIn {
		out.Replies = append(out.Replies, StanzaUnsubscribed)
	}
	if st.Subscription.hasFrom() {
		out.Presence = PresenceSendUnavailable
	}
	if st.PendingIn {
		out.Events = append(out.Events, RosterRequestCleared{JID: key})
	}
	ev := RosterItemRemoved{JID: key, Ver: r.ver + 1}
	out.Events = append(out.Events, ev)
	out.Push = &RosterPush{Item: old.clone(), Removed: true, Ver: ev.Ver}
	return out, nil
}

// Apply is the roster's fold function. It consumes r (see Roster). Events
// of other concerns leave the state unchanged.
func (r Roster) Apply(p Payload) Roster {
	switch e := p.(type) {
	case RosterItemSet:
		if r.items == nil {
			r.items = make(map[string]RosterItem)
		}
		r.items[e.JID] = e.RosterItem.clone()
		r.ver = e.Ver
	case RosterItemRemoved:
		delete(r.items, e.JID)
		r.ver = e.Ver
	case RosterRequestReceived:
		if r.requests == nil {
			r.requests = make(map[string]bool)
		}
		r.requests[e.JID] = true
	case RosterRequestCleared:
		delete(r.requests, e.JID)
	}
	return r
}
