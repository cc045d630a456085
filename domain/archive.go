package domain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// The archive and offline-queue events (issue 4). Their bodies hold
// message content only sealed (package domain/envelope): what is in clear
// in the log, for anyone holding a copy of it, is
//
//   - the owner's bare JID (in the stream name, ArchiveStream or
//     OfflineStream) and the event's time;
//   - the archive or queue id, a UUIDv7, hence the time of storage to the
//     millisecond, and the order of records;
//   - the id of the data key each record is sealed under (also in the
//     sealed record's header), hence which records share a key;
//   - the length of each sealed record (payload + envelope.Overhead bytes);
//   - the blind index term of the partner, if any: which records belong to
//     the same partner, never who that partner is;
//   - the number of records, and which queued messages were delivered.
//
// The stanza, the partner's JID, the direction and the message's own
// timestamp are inside the seal (SealedMessage).

// Event type names of the archive and the offline queue.
const (
	TypeArchiveMessageStored  = "archive.message_stored"
	TypeArchivePartnerIndexed = "archive.partner_indexed"
	TypeArchiveForgotten      = "archive.forgotten"
	TypeOfflineMessageQueued  = "offline.message_queued"
	TypeOfflineDelivered      = "offline.delivered"
)

// ArchiveMessageStored records one archived message, stream ArchiveStream.
type ArchiveMessageStored struct {
	// ArchiveID is the message's archive id: the XEP-0359 <stanza-id> and
	// the MAM result id. A UUIDv7, so it sorts by time.
	ArchiveID uuid.UUID `json:"id"`
	// KeyID names the data key in the key store that Sealed is sealed under.
	KeyID uuid.UUID `json:"key"`
	// Sealed is the envelope record (kind archive, record id ArchiveID) of
	// the encoded SealedMessage.
	Sealed []byte `json:"sealed"`
	// Index is the partner's blind index term (32 bytes), present when the
	// user's identity was unlocked at the time of writing; otherwise the
	// record is indexed by a later ArchivePartnerIndexed.
	Index []byte `json:"index,omitempty"`
}

// EventType implements Payload.
func (ArchiveMessageStored) EventType() string { return TypeArchiveMessageStored }

// EventSchemaVersion implements Payload.
func (ArchiveMessageStored) EventSchemaVersion() int { return 1 }

// ArchiveIndexEntry gives the blind index term of one archived message.
type ArchiveIndexEntry struct {
	ArchiveID uuid.UUID `json:"id"`
	Index     []byte    `json:"index"`
}

// ArchivePartnerIndexed adds blind index terms to messages that were
// archived while the user's identity was locked (the user was offline).
// It is appended at a later login, stream ArchiveStream.
type ArchivePartnerIndexed struct {
	Entries []ArchiveIndexEntry `json:"entries"`
}

// EventType implements Payload.
func (ArchivePartnerIndexed) EventType() string { return TypeArchivePartnerIndexed }

// EventSchemaVersion implements Payload.
func (ArchivePartnerIndexed) EventSchemaVersion() int { return 1 }

// ArchiveRange is an inclusive range of archive ids.
type ArchiveRange struct {
	From uuid.UUID `json:"from"`
	To   uuid.UUID `json:"to"`
}

// ArchiveForgotten removes messages from the user's history view, stream
// ArchiveStream. The sealed records stay in the immutable log; what makes
// them unreadable is deleting their data keys (crypto-shredding).
type ArchiveForgotten struct {
	IDs    []uuid.UUID    `json:"ids,omitempty"`
	Ranges []ArchiveRange `json:"ranges,omitempty"`
}

// EventType implements Payload.
func (ArchiveForgotten) EventType() string { return TypeArchiveForgotten }

// EventSchemaVersion implements Payload.
func (ArchiveForgotten) EventSchemaVersion() int { return 1 }

// OfflineMessageQueued records a message waiting for its recipient, stream
// OfflineStream.
type OfflineMessageQueued struct {
	// ID is the queue id, a UUIDv7; the record id of Sealed.
	ID    uuid.UUID `json:"id"`
	KeyID uuid.UUID `json:"key"`
	// Sealed is the envelope record (kind offline, record id ID) of the
	// encoded SealedMessage.
	Sealed []byte `json:"sealed"`
}

// EventType implements Payload.
func (OfflineMessageQueued) EventType() string { return TypeOfflineMessageQueued }

// EventSchemaVersion implements Payload.
func (OfflineMessageQueued) EventSchemaVersion() int { return 1 }

// OfflineDelivered records that queued messages reached the user, stream
// OfflineStream. Their data keys are deleted once every message sealed
// under them is delivered.
type OfflineDelivered struct {
	IDs []uuid.UUID `json:"ids"`
}

// EventType implements Payload.
func (OfflineDelivered) EventType() string { return TypeOfflineDelivered }

// EventSchemaVersion implements Payload.
func (OfflineDelivered) EventSchemaVersion() int { return 1 }

// Direction says whether the owner of an archive received or sent a
// message.
type Direction uint8

// The directions of an archived message.
const (
	DirectionIn  Direction = 1
	DirectionOut Direction = 2
)

// Valid reports whether d is DirectionIn or DirectionOut.
func (d Direction) Valid() bool { return d == DirectionIn || d == DirectionOut }

// String returns "in" or "out".
func (d Direction) String() string {
	switch d {
	case DirectionIn:
		return "in"
	case DirectionOut:
		return "out"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// SealedMessage is the plaintext inside a sealed archive or offline record.
// It is encoded in binary, not JSON: it is never read by anything but the
// archive, and a binary form keeps the stanza as it is (no base64 growth)
// and costs nothing to parse when a whole history is decrypted.
type SealedMessage struct {
	// Partner is the canonical bare JID of the other side; empty for an
	// offline message (its stanza names the sender).
	Partner   string
	Direction Direction
	// At is when the server handled the message (XEP-0203 delay stamp).
	At time.Time
	// Stanza is the message stanza as routed, XML.
	Stanza []byte
}

// ErrSealedMessage is wrapped when a decrypted payload does not decode.
var ErrSealedMessage = errors.New("domain: malformed sealed message")

const sealedMessageV1 = 1

// Encode returns version(1) ‖ direction(1) ‖ unix nanoseconds(8, big
// endian) ‖ uvarint partner length ‖ partner ‖ stanza.
func (m SealedMessage) Encode() []byte {
	out := make([]byte, 0, 10+binary.MaxVarintLen64+len(m.Partner)+len(m.Stanza))
	out = append(out, sealedMessageV1, byte(m.Direction))
	out = binary.BigEndian.AppendUint64(out, uint64(m.At.UnixNano()))
	out = binary.AppendUvarint(out, uint64(len(m.Partner)))
	out = append(out, m.Partner...)
	return append(out, m.Stanza...)
}

// DecodeSealedMessage is the inverse of Encode. The Stanza aliases b.
func DecodeSealedMessage(b []byte) (SealedMessage, error) {
	if len(b) < 10 {
		return SealedMessage{}, fmt.Errorf("%w: %d bytes", ErrSealedMessage, len(b))
	}
	if b[0] != sealedMessageV1 {
		return SealedMessage{}, fmt.Errorf("%w: version %d", ErrSealedMessage, b[0])
	}
	m := SealedMessage{
		Direction: Direction(b[1]),
		At:        time.Unix(0, int64(binary.BigEndian.Uint64(b[2:10]))).UTC(),
	}
	n, k := binary.Uvarint(b[10:])
	if k <= 0 || n > uint64(len(b)-10-k) {
		return SealedMessage{}, fmt.Errorf("%w: partner length", ErrSealedMessage)
	}
	rest := b[10+k:]
	m.Partner = string(rest[:n])
	m.Stanza = rest[n:]
	return m, nil
}

// ArchiveIDTime returns the time carried by a UUIDv7 archive id, to the
// millisecond.
func ArchiveIDTime(id uuid.UUID) time.Time {
	ms := int64(id[0])<<40 | int64(id[1])<<32 | int64(id[2])<<24 | int64(id[3])<<16 | int64(id[4])<<8 | int64(id[5])
	return time.UnixMilli(ms).UTC()
}

// ArchiveIDBound returns the smallest (high false) or the largest (high
// true) UUIDv7 of the millisecond of t, so that a time range becomes an id
// range.
func ArchiveIDBound(t time.Time, high bool) uuid.UUID {
	var id uuid.UUID
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	for i := range 6 {
		id[i] = byte(ms >> (40 - 8*i))
	}
	if high {
		for i := 6; i < 16; i++ {
			id[i] = 0xff
		}
	}
	return id
}
