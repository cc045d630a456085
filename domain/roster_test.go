package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

var (
	contact    = jid.MustParse("juliet@example.com")
	fixedClock = ClockFunc(func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) })
)

// appendixA transcribes the tables of RFC 6121 Appendix A (A.2 for
// stanzas the user sends, A.3 for stanzas the contact sends), one row per
// state: existing state, whether the stanza is routed (outbound) or
// delivered (inbound), and the new state ("-" for no change). Extra words
// name the side effects the RFC text attaches to a row:
// reply=<type> for a stanza the server sends to the contact on the user's
// behalf (the footnote of A.3.1, §3.1.3), presence=available|unavailable
// for presence sent from the user's resources (§3.1.5, §3.2, §3.3),
// approved for the pre-approval the footnote of A.2.3 allows (§3.4): the
// item gains approved='true' and is pushed.
var appendixA = []struct {
	dir    string
	stanza SubscriptionStanza
	rows   string
}{
	{"out", StanzaSubscribe, `
		None                      yes  None+PendingOut
		None+PendingOut           yes  -
		None+PendingIn            yes  None+PendingOut+PendingIn
		None+PendingOut+PendingIn yes  -
		To                        yes  -
		To+PendingIn              yes  -
		From                      yes  From+PendingOut
		From+PendingOut           yes  -
		Both                      yes  -`},
	{"out", StanzaUnsubscribe, `
		None                      yes  -
		None+PendingOut           yes  None
		None+PendingIn            yes  -
		None+PendingOut+PendingIn yes  None+PendingIn
		To                        yes  None
		To+PendingIn              yes  None+PendingIn
		From                      yes  -
		From+PendingOut           yes  From
		Both                      yes  From`},
	{"out", StanzaSubscribed, `
		None                      no   -                         approved
		None+PendingOut           no   -                         approved
		None+PendingIn            yes  From                      presence=available
		None+PendingOut+PendingIn yes  From+PendingOut           presence=available
		To                        no   -                         approved
		To+PendingIn              yes  Both                      presence=available
		From                      no   -
		From+PendingOut           no   -
		Both                      no   -`},
	{"out", StanzaUnsubscribed, `
		None                      no   -
		None+PendingOut           no   -
		None+PendingIn            yes  None
		None+PendingOut+PendingIn yes  None+PendingOut
		To                        no   -
		To+PendingIn              yes  To
		From                      yes  None                      presence=unavailable
		From+PendingOut           yes  None+PendingOut           presence=unavailable
		Both                      yes  To                        presence=unavailable`},
	{"in", StanzaSubscribe, `
		None                      yes  None+PendingIn
		None+PendingOut           yes  None+PendingOut+PendingIn
		None+PendingIn            no   -
		None+PendingOut+PendingIn no   -
		To                        yes  To+PendingIn
		To+PendingIn              no   -
		From                      no   -                         reply=subscribed
		From+PendingOut           no   -                         reply=subscribed
		Both                      no   -                         reply=subscribed`},
	{"in", StanzaUnsubscribe, `
		None                      no   -
		None+PendingOut           no   -
		None+PendingIn            yes  None
		None+PendingOut+PendingIn yes  None+PendingOut
		To                        no   -
		To+PendingIn              yes  To
		From                      yes  None                      presence=unavailable
		From+PendingOut           yes  None+PendingOut           presence=unavailable
		Both                      yes  To                        presence=unavailable`},
	{"in", StanzaSubscribed, `
		None                      no   -
		None+PendingOut           yes  To
		None+PendingIn            no   -
		None+PendingOut+PendingIn yes  To+PendingIn
		To                        no   -
		To+PendingIn              no   -
		From                      no   -
		From+PendingOut           yes  Both
		Both                      no   -`},
	{"in", StanzaUnsubscribed, `
		None                      no   -
		None+PendingOut           yes  None
		None+PendingIn            no   -
		None+PendingOut+PendingIn yes  None+PendingIn
		To                        yes  None
		To+PendingIn              yes  None+PendingIn
		From                      no   -
		From+PendingOut           yes  From
		Both                      yes  From`},
}

func parseState(t *testing.T, s string) SubscriptionState {
	t.Helper()
	parts := strings.Split(s, "+")
	st := SubscriptionState{Subscription: Subscription(strings.ToLower(parts[0]))}
	for _, p := range parts[1:] {
		switch p {
		case "PendingOut":
			st.PendingOut = true
		case "PendingIn":
			st.PendingIn = true
		default:
			t.Fatalf("bad state %q", s)
		}
	}
	if st.String() != s {
		t.Fatalf("state %q does not round-trip (got %q)", s, st)
	}
	return st
}

// rosterIn builds a roster holding contact in state st. listed says
// whether the contact has a visible roster item; states with a
// subscription or a pending-out always have one.
func rosterIn(t *testing.T, st SubscriptionState, listed, approved bool) Roster {
	t.Helper()
	r := NewRoster(0)
	key := contact.String()
	if listed || st.Subscription != SubscriptionNone || st.PendingOut || approved {
		r = r.Apply(RosterItemSet{RosterItem: RosterItem{
			JID: key, Name: "Juliet", Groups: []string{"Friends"},
			Subscription: st.Subscription, Ask: st.PendingOut, Approved: approved,
		}, Ver: 41})
	}
	if st.PendingIn {
		r = r.Apply(RosterRequestReceived{JID: key})
	}
	if got := r.State(contact); got != st {
		t.Fatalf("setup: state %s, want %s", got, st)
	}
	return r
}

// replay records the outcome's events through the real envelope and
// catalogue (JSON encode, Decode), then folds them, as the command path
// and the projections do.
func replay(t *testing.T, r Roster, out RosterOutcome) Roster {
	t.Helper()
	evs, err := NewEvents(fixedClock, out.Events...)
	if err != nil {
		t.Fatal(err)
	}
	r, err = Fold(r, Roster.Apply, evs...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func visible(st SubscriptionState) [2]any { return [2]any{st.Subscription, st.PendingOut} }

func TestSubscriptionStateTable(t *testing.T) {
	for _, table := range appendixA {
		lines := strings.Split(strings.TrimSpace(table.rows), "\n")
		if len(lines) != 9 {
			t.Fatalf("%s %s: %d rows, want one per state (9)", table.dir, table.stanza, len(lines))
		}
		for _, line := range lines {
			f := strings.Fields(line)
			from := f[0]
			for _, listed := range []bool{true, false} {
				fromSt := parseState(t, from)
				if !listed && (fromSt.Subscription != SubscriptionNone || fromSt.PendingOut) {
					continue // such states always have an item
				}
				name := fmt.Sprintf("%s %s/%s/listed=%v", table.dir, table.stanza, from, listed)
				t.Run(name, func(t *testing.T) {
					wantForward := f[1] == "yes"
					want := fromSt
					if f[2] != "-" {
						want = parseState(t, f[2])
					}
					var wantReplies []SubscriptionStanza
					wantPresence := PresenceNone
					wantApproved := false
					for _, extra := range f[3:] {
						k, v, _ := strings.Cut(extra, "=")
						switch k {
						case "reply":
							wantReplies = append(wantReplies, SubscriptionStanza(v))
						case "approved":
							wantApproved = true
						case "presence":
							wantPresence = map[string]PresenceAction{"available": PresenceSendAvailable, "unavailable": PresenceSendUnavailable}[v]
						}
					}

					r := rosterIn(t, fromSt, listed, false)
					oldVer := r.Ver()
					var out RosterOutcome
					var err error
					if table.dir == "out" {
						out, err = r.Outbound(contact, table.stanza)
					} else {
						out, err = r.Inbound(contact, table.stanza)
					}
					if err != nil {
						t.Fatal(err)
					}
					if out.Forward != wantForward {
						t.Errorf("forward = %v, want %v", out.Forward, wantForward)
					}
					if !slices.Equal(out.Replies, wantReplies) {
						t.Errorf("replies = %v, want %v", out.Replies, wantReplies)
					}
					if out.Presence != wantPresence {
						t.Errorf("presence = %v, want %v", out.Presence, wantPresence)
					}
					if want == fromSt && !wantApproved && len(out.Events) != 0 {
						t.Errorf("no state change but events %+v", out.Events)
					}

					next := replay(t, r, out)
					if got := next.State(contact); got != want {
						t.Errorf("new state %s, want %s", got, want)
					}

					// A roster push is due exactly when what the client
					// sees (subscription, ask) changes; pending-in is
					// server-side state only (RFC 6121 §3.1.3).
					wantPush := visible(fromSt) != visible(want) || wantApproved
					if (out.Push != nil) != wantPush {
						t.Fatalf("push = %+v, want push %v", out.Push, wantPush)
					}
					if wantPush {
						if out.Push.Ver != oldVer+1 || next.Ver() != oldVer+1 {
							t.Errorf("push ver %d, roster ver %d, want %d", out.Push.Ver, next.Ver(), oldVer+1)
						}
						item, ok := next.Item(contact)
						if !ok {
							t.Fatal("push but no item after replay")
						}
						if item.Approved != wantApproved {
							t.Errorf("approved = %v, want %v", item.Approved, wantApproved)
						}
						if item.Subscription != out.Push.Item.Subscription || item.Ask != out.Push.Item.Ask || item.Approved != out.Push.Item.Approved {
							t.Errorf("pushed %+v, roster holds %+v", out.Push.Item, item)
						}
						if listed && (item.Name != "Juliet" || !slices.Equal(item.Groups, []string{"Friends"})) {
							t.Errorf("subscription change lost name/groups: %+v", item)
						}
					} else if next.Ver() != oldVer {
						t.Errorf("roster ver moved from %d to %d without a push", oldVer, next.Ver())
					}
					if _, ok := next.Item(contact); !listed && !wantPush && ok {
						t.Error("item created without a visible change")
					}
				})
			}
		}
	}
}

// TestPreApproval covers RFC 6121 §3.4: the user approves a subscription
// before the contact asks, and the server answers the later request alone.
func TestPreApproval(t *testing.T) {
	tests := []struct {
		from, afterRequest string
	}{
		{"None", "From"},
		{"None+PendingOut", "From+PendingOut"},
		{"To", "Both"},
	}
	for _, tc := range tests {
		for _, listed := range []bool{true, false} {
			st := parseState(t, tc.from)
			if !listed && st != (SubscriptionState{Subscription: SubscriptionNone}) {
				continue
			}
			t.Run(fmt.Sprintf("%s/listed=%v", tc.from, listed), func(t *testing.T) {
				r := rosterIn(t, st, listed, false)

				out, err := r.Outbound(contact, StanzaSubscribed)
				if err != nil {
					t.Fatal(err)
				}
				if out.Forward || out.Push == nil || !out.Push.Item.Approved {
					t.Fatalf("pre-approval outcome %+v: want no routing and a push with approved", out)
				}
				r = replay(t, r, out)
				if it, _ := r.Item(contact); !it.Approved || r.State(contact) != st {
					t.Fatalf("after pre-approval: item %+v state %s", it, r.State(contact))
				}

				// Approving twice changes nothing.
				again, err := r.Outbound(contact, StanzaSubscribed)
				if err != nil || len(again.Events) != 0 || again.Push != nil {
					t.Fatalf("second pre-approval: %+v, %v", again, err)
				}

				out, err = r.Inbound(contact, StanzaSubscribe)
				if err != nil {
					t.Fatal(err)
				}
				if out.Forward {
					t.Error("pre-approved request delivered to the user")
				}
				if !slices.Equal(out.Replies, []SubscriptionStanza{StanzaSubscribed}) {
					t.Errorf("replies %v, want [subscribed]", out.Replies)
				}
				if out.Presence != PresenceSendAvailable {
					t.Errorf("presence %v, want send available", out.Presence)
				}
				r = replay(t, r, out)
				if got := r.State(contact); got.String() != tc.afterRequest {
					t.Errorf("state %s, want %s", got, tc.afterRequest)
				}
				if it, _ := r.Item(contact); it.Approved {
					t.Error("approved flag kept after the subscription was granted")
				}
			})
		}
	}
}

func TestPreApprovalCancelled(t *testing.T) {
	r := rosterIn(t, SubscriptionState{Subscription: SubscriptionTo}, true, true)
	out, err := r.Outbound(contact, StanzaUnsubscribed)
	if err != nil {
		t.Fatal(err)
	}
	if out.Forward || out.Push == nil || out.Push.Item.Approved {
		t.Fatalf("cancel outcome %+v: want a push without approved and no routing", out)
	}
	r = replay(t, r, out)
	out, err = r.Inbound(contact, StanzaSubscribe)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Forward || len(out.Replies) != 0 {
		t.Fatalf("request after cancelled pre-approval: %+v, want delivery to the user", out)
	}
}

// TestRemoveItem checks RFC 6121 §2.5.3: removing an item cancels the
// subscriptions in both directions on the user's behalf.
func TestRemoveItem(t *testing.T) {
	tests := []struct {
		state    string
		replies  []SubscriptionStanza
		presence PresenceAction
	}{
		{"None", nil, PresenceNone},
		{"None+PendingOut", []SubscriptionStanza{StanzaUnsubscribe}, PresenceNone},
		{"None+PendingIn", []SubscriptionStanza{StanzaUnsubscribed}, PresenceNone},
		{"None+PendingOut+PendingIn", []SubscriptionStanza{StanzaUnsubscribe, StanzaUnsubscribed}, PresenceNone},
		{"To", []SubscriptionStanza{StanzaUnsubscribe}, PresenceNone},
		{"To+PendingIn", []SubscriptionStanza{StanzaUnsubscribe, StanzaUnsubscribed}, PresenceNone},
		{"From", []SubscriptionStanza{StanzaUnsubscribed}, PresenceSendUnavailable},
		{"From+PendingOut", []SubscriptionStanza{StanzaUnsubscribe, StanzaUnsubscribed}, PresenceSendUnavailable},
		{"Both", []SubscriptionStanza{StanzaUnsubscribe, StanzaUnsubscribed}, PresenceSendUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.state, func(t *testing.T) {
			r := rosterIn(t, parseState(t, tc.state), true, false)
			out, err := r.RemoveItem(contact)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out.Replies, tc.replies) {
				t.Errorf("replies %v, want %v", out.Replies, tc.replies)
			}
			if out.Presence != tc.presence {
				t.Errorf("presence %v, want %v", out.Presence, tc.presence)
			}
			if out.Push == nil || !out.Push.Removed || out.Push.Item.JID != contact.String() || out.Push.Ver != r.Ver()+1 {
				t.Errorf("push %+v, want removal of %s at ver %d", out.Push, contact, r.Ver()+1)
			}
			r = replay(t, r, out)
			if _, ok := r.Item(contact); ok {
				t.Error("item still there")
			}
			if st := r.State(contact); st != (SubscriptionState{Subscription: SubscriptionNone}) {
				t.Errorf("state after remove %s, want None", st)
			}
			if len(r.PendingRequests()) != 0 {
				t.Errorf("pending requests %v after remove", r.PendingRequests())
			}
		})
	}

	_, err := NewRoster(0).RemoveItem(contact)
	if !errors.Is(err, ErrRosterItemNotFound) {
		t.Errorf("remove of a missing item: %v, want ErrRosterItemNotFound", err)
	}
	// A stranger's pending request is not a roster item.
	r := rosterIn(t, SubscriptionState{Subscription: SubscriptionNone, PendingIn: true}, false, false)
	if _, err := r.RemoveItem(contact); !errors.Is(err, ErrRosterItemNotFound) {
		t.Errorf("remove of a request-only contact: %v, want ErrRosterItemNotFound", err)
	}
}

func TestSetItem(t *testing.T) {
	r := NewRoster(0)
	out, err := r.SetItem(contact, "Juliet", []string{"Friends", "Verona"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Push == nil || out.Push.Ver != 1 || out.Push.Item.Subscription != SubscriptionNone {
		t.Fatalf("create push %+v, want a none item at ver 1", out.Push)
	}
	r = replay(t, r, out)

	// Unchanged set: nothing recorded, nothing pushed.
	out, err = r.SetItem(contact, "Juliet", []string{"Friends", "Verona"})
	if err != nil || len(out.Events) != 0 || out.Push != nil {
		t.Fatalf("unchanged set: %+v, %v", out, err)
	}

	// A rename keeps the subscription the server manages.
	r = replay(t, r, mustOutcome(t)(r.Outbound(contact, StanzaSubscribe)))
	out, err = r.SetItem(contact, "J.", nil)
	if err != nil {
		t.Fatal(err)
	}
	r = replay(t, r, out)
	it, _ := r.Item(contact)
	if it.Name != "J." || it.Groups != nil || !it.Ask || r.Ver() != 3 {
		t.Errorf("after rename: %+v ver %d", it, r.Ver())
	}

	// Setting a contact that only sent a request makes it visible and
	// keeps the request pending.
	romeo := jid.MustParse("romeo@example.net")
	r = replay(t, r, mustOutcome(t)(r.Inbound(romeo, StanzaSubscribe)))
	r = replay(t, r, mustOutcome(t)(r.SetItem(romeo, "Romeo", nil)))
	if st := r.State(romeo); st.String() != "None+PendingIn" {
		t.Errorf("romeo state %s, want None+PendingIn", st)
	}

	bad := []struct {
		name    string
		contact jid.JID
		item    string
		groups  []string
		want    error
	}{
		{"full JID", jid.MustParse("juliet@example.com/balcony"), "", nil, ErrInvalidRosterItem},
		{"empty group", contact, "", []string{"a", ""}, ErrInvalidRosterItem},
		{"duplicate group", contact, "", []string{"a", "a"}, ErrInvalidRosterItem},
		{"long name", contact, strings.Repeat("x", MaxRosterTextLen+1), nil, ErrInvalidRosterItem},
		{"long group", contact, "", []string{strings.Repeat("x", MaxRosterTextLen+1)}, ErrInvalidRosterItem},
		{"no JID", jid.JID{}, "", nil, ErrInvalidJID},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.SetItem(tc.contact, tc.item, tc.groups); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func mustOutcome(t *testing.T) func(RosterOutcome, error) RosterOutcome {
	return func(o RosterOutcome, err error) RosterOutcome {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
}

func TestRosterLimit(t *testing.T) {
	r := NewRoster(2)
	a, b, c := jid.MustParse("a@x.example"), jid.MustParse("b@x.example"), jid.MustParse("c@x.example")
	r = replay(t, r, mustOutcome(t)(r.SetItem(a, "", nil)))
	// A stranger's request counts, so strangers cannot grow the state.
	r = replay(t, r, mustOutcome(t)(r.Inbound(b, StanzaSubscribe)))

	checks := []struct {
		name string
		do   func() (RosterOutcome, error)
	}{
		{"set", func() (RosterOutcome, error) { return r.SetItem(c, "", nil) }},
		{"outbound subscribe", func() (RosterOutcome, error) { return r.Outbound(c, StanzaSubscribe) }},
		{"pre-approval", func() (RosterOutcome, error) { return r.Outbound(c, StanzaSubscribed) }},
		{"inbound subscribe", func() (RosterOutcome, error) { return r.Inbound(c, StanzaSubscribe) }},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.do()
			var full *RosterFullError
			if !errors.As(err, &full) || !errors.Is(err, ErrRosterFull) || full.Max != 2 {
				t.Fatalf("err = %v, want RosterFullError{Max: 2}", err)
			}
		})
	}
	// Entries already counted still change freely.
	if _, err := r.Outbound(b, StanzaSubscribed); err != nil {
		t.Errorf("approving a counted request: %v", err)
	}
	if _, err := r.SetItem(a, "renamed", nil); err != nil {
		t.Errorf("renaming a counted item: %v", err)
	}
	// Outbound unsubscribe to a stranger creates nothing, so it is allowed.
	if out, err := r.Outbound(c, StanzaUnsubscribe); err != nil || len(out.Events) != 0 {
		t.Errorf("unsubscribe to a stranger: %+v, %v", out, err)
	}
}

func TestRosterPendingRequestsAndItems(t *testing.T) {
	r := NewRoster(0)
	for _, s := range []string{"b@x.example", "a@x.example"} {
		r = replay(t, r, mustOutcome(t)(r.Inbound(jid.MustParse(s), StanzaSubscribe)))
	}
	if got := r.PendingRequests(); !slices.Equal(got, []string{"a@x.example", "b@x.example"}) {
		t.Errorf("pending %v", got)
	}
	if len(r.Items()) != 0 || r.Ver() != 0 {
		t.Errorf("requests from strangers created items %v or moved ver %d", r.Items(), r.Ver())
	}
	r = replay(t, r, mustOutcome(t)(r.Outbound(jid.MustParse("b@x.example"), StanzaSubscribed)))
	items := r.Items()
	if len(items) != 1 || items[0].JID != "b@x.example" || items[0].Subscription != SubscriptionFrom {
		t.Errorf("items %+v, want b with from", items)
	}
	if got := r.PendingRequests(); !slices.Equal(got, []string{"a@x.example"}) {
		t.Errorf("pending %v", got)
	}
	// Items returns copies: changing them must not change the state.
	items[0].Groups = append(items[0].Groups, "x")
	if it, _ := r.Item(jid.MustParse("b@x.example")); len(it.Groups) != 0 {
		t.Error("Items leaked the state's slices")
	}
}

func TestSubscriptionUsesBareJID(t *testing.T) {
	r := NewRoster(0)
	out, err := r.Outbound(jid.MustParse("Juliet@Example.com/balcony"), StanzaSubscribe)
	if err != nil {
		t.Fatal(err)
	}
	r = replay(t, r, out)
	if st := r.State(contact); !st.PendingOut {
		t.Errorf("state of %s: %s, want PendingOut on the bare JID", contact, st)
	}
	if _, err := r.Outbound(contact, SubscriptionStanza("probe")); err == nil {
		t.Error("unknown stanza type accepted")
	}
}
