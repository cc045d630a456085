package domain

import (
	"errors"
	"fmt"
	"slices"

	"mellium.im/xmpp/jid"
)

// BlocklistChanged records a change of the user's blocking list (XEP-0191),
// stream BlocklistStream. It carries only what actually changed, so a
// projection or a push to the user's other resources needs no diff.
type BlocklistChanged struct {
	// Blocked are canonical JIDs newly blocked, sorted.
	Blocked []string `json:"blocked,omitempty"`
	// Unblocked are canonical JIDs no longer blocked, sorted.
	Unblocked []string `json:"unblocked,omitempty"`
	// UnblockAll empties the list; Blocked and Unblocked are then empty.
	UnblockAll bool `json:"unblock_all,omitempty"`
}

// EventType implements Payload.
func (BlocklistChanged) EventType() string { return TypeBlocklistChanged }

// EventSchemaVersion implements Payload.
func (BlocklistChanged) EventSchemaVersion() int { return 1 }

// Blocklist errors, matched with errors.Is or errors.As.
var (
	ErrEmptyBlockRequest = errors.New("domain: block or unblock without JIDs")
	ErrBlocklistFull     = errors.New("domain: blocklist full")
)

// BlocklistFullError is returned when a block would take the list past its
// size limit. errors.Is(err, ErrBlocklistFull) holds.
type BlocklistFullError struct {
	Max int
}

func (e *BlocklistFullError) Error() string {
	return fmt.Sprintf("domain: blocklist full (%d entries)", e.Max)
}

// Is makes errors.Is(err, ErrBlocklistFull) true.
func (e *BlocklistFullError) Is(target error) bool { return target == ErrBlocklistFull }

// Blocklist is the state of one user's blocking list, folded from
// BlocklistStream. Entries are JIDs of any shape XEP-0191 allows: a
// domain, a bare JID or a full JID.
//
// The zero value is an empty list with no size limit. Like Roster, Apply
// consumes the receiver.
type Blocklist struct {
	max  int
	jids map[string]bool
}

// NewBlocklist returns an empty blocklist holding at most maxItems JIDs;
// 0 means no limit. The limit keeps a client from growing the state (and
// every stanza check) without bound.
func NewBlocklist(maxItems int) Blocklist { return Blocklist{max: maxItems} }

// JIDs returns the blocked JIDs, sorted (a blocklist get).
func (b Blocklist) JIDs() []string {
	out := make([]string, 0, len(b.jids))
	for j := range b.jids {
		out = append(out, j)
	}
	slices.Sort(out)
	return out
}

// Len is the number of blocked JIDs.
func (b Blocklist) Len() int { return len(b.jids) }

// Blocks reports whether a stanza from (or to) peer is blocked. Matching
// follows XEP-0191 §3.3 (the rules of XEP-0016): an entry matches the full
// JID, the bare JID, the domain with that resource, or the domain.
func (b Blocklist) Blocks(peer jid.JID) bool {
	if len(b.jids) == 0 || isZeroJID(peer) {
		return false
	}
	d := peer.Domainpart()
	candidates := []string{peer.String(), peer.Bare().String(), d}
	if r := peer.Resourcepart(); r != "" {
		candidates = append(candidates, d+"/"+r)
	}
	for _, c := range candidates {
		if b.jids[c] {
			return true
		}
	}
	return false
}

// Block decides adding JIDs to the list. JIDs already blocked are skipped;
// if none is new, nothing is recorded. XEP-0191 makes an empty block
// request a bad-request, hence ErrEmptyBlockRequest.
func (b Blocklist) Block(jids ...jid.JID) ([]Payload, error) {
	keys := canonicalJIDs(jids)
	if len(keys) == 0 {
		return nil, fmt.Errorf("block: %w", ErrEmptyBlockRequest)
	}
	var added []string
	for _, k := range keys {
		if !b.jids[k] {
			added = append(added, k)
		}
	}
	if len(added) == 0 {
		return nil, nil
	}
	if b.max > 0 && len(b.jids)+len(added) > b.max {
		return nil, &BlocklistFullError{Max: b.max}
	}
	return []Payload{BlocklistChanged{Blocked: added}}, nil
}

// Unblock decides removing JIDs from the list. JIDs not blocked are
// skipped; if none was blocked, nothing is recorded. An unblock request
// with no item means "unblock all" in XEP-0191: the front end calls
// UnblockAll for it, so Unblock with no JIDs is an error here rather than a
// silent wipe.
func (b Blocklist) Unblock(jids ...jid.JID) ([]Payload, error) {
	keys := canonicalJIDs(jids)
	if len(keys) == 0 {
		return nil, fmt.Errorf("unblock: %w", ErrEmptyBlockRequest)
	}
	var removed []string
	for _, k := range keys {
		if b.jids[k] {
			removed = append(removed, k)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	return []Payload{BlocklistChanged{Unblocked: removed}}, nil
}

// UnblockAll decides emptying the list; an empty list records nothing.
func (b Blocklist) UnblockAll() ([]Payload, error) {
	if len(b.jids) == 0 {
		return nil, nil
	}
	return []Payload{BlocklistChanged{UnblockAll: true}}, nil
}

// Apply is the blocklist's fold function.
func (b Blocklist) Apply(p Payload) Blocklist {
	e, ok := p.(BlocklistChanged)
	if !ok {
		return b
	}
	if e.UnblockAll {
		b.jids = nil
	}
	for _, j := range e.Unblocked {
		delete(b.jids, j)
	}
	if len(e.Blocked) > 0 && b.jids == nil {
		b.jids = make(map[string]bool, len(e.Blocked))
	}
	for _, j := range e.Blocked {
		b.jids[j] = true
	}
	return b
}
