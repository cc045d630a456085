package domain

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

// archiveSamples are the archive and offline events of catalogue().
func archiveSamples() []Payload {
	id := uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057")
	key := uuid.MustParse("01890a5d-ac96-7000-8000-000000000001")
	return []Payload{
		ArchiveMessageStored{ArchiveID: id, KeyID: key, Sealed: []byte{1, 2, 3}, Index: bytes.Repeat([]byte{7}, 32)},
		ArchiveMessageStored{ArchiveID: id, KeyID: key, Sealed: []byte{1, 2, 3}},
		ArchivePartnerIndexed{Entries: []ArchiveIndexEntry{{ArchiveID: id, Index: bytes.Repeat([]byte{7}, 32)}}},
		ArchiveForgotten{IDs: []uuid.UUID{id}, Ranges: []ArchiveRange{{From: key, To: id}}},
		OfflineMessageQueued{ID: id, KeyID: key, Sealed: []byte{4, 5}},
		OfflineDelivered{IDs: []uuid.UUID{id}},
	}
}

func TestSealedMessageRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 891011, time.UTC)
	for _, m := range []SealedMessage{
		{Partner: "juliet@capulet.example", Direction: DirectionIn, At: at, Stanza: []byte("<message><body>hi</body></message>")},
		{Direction: DirectionOut, At: at},
		{Partner: "a@b", Direction: DirectionOut, At: at, Stanza: []byte{0, 1, 2}},
	} {
		got, err := DecodeSealedMessage(m.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if got.Partner != m.Partner || got.Direction != m.Direction || !got.At.Equal(m.At) || !bytes.Equal(got.Stanza, m.Stanza) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestDecodeSealedMessageRefuses(t *testing.T) {
	good := SealedMessage{Partner: "a@b", Direction: DirectionIn, At: time.Unix(1, 0), Stanza: []byte("x")}.Encode()
	bad := map[string][]byte{
		"empty":           nil,
		"short":           good[:9],
		"version":         append([]byte{9}, good[1:]...),
		"partner too big": append(append([]byte(nil), good[:10]...), 0x7f, 'a'),
		"bad varint":      append(append([]byte(nil), good[:10]...), 0xff),
	}
	for name, b := range bad {
		if _, err := DecodeSealedMessage(b); !errors.Is(err, ErrSealedMessage) {
			t.Errorf("%s: err %v, want ErrSealedMessage", name, err)
		}
	}
}

func TestArchiveIDTimeAndBounds(t *testing.T) {
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	at := ArchiveIDTime(id)
	lo, hi := ArchiveIDBound(at, false), ArchiveIDBound(at, true)
	if bytes.Compare(lo[:], id[:]) > 0 || bytes.Compare(id[:], hi[:]) > 0 {
		t.Fatalf("id %s not within [%s, %s] of its own millisecond", id, lo, hi)
	}
	next := ArchiveIDBound(at.Add(time.Millisecond), false)
	if bytes.Compare(hi[:], next[:]) >= 0 {
		t.Fatalf("upper bound %s not before the next millisecond %s", hi, next)
	}
	if got := ArchiveIDTime(lo); !got.Equal(at) {
		t.Fatalf("time of bound %v, want %v", got, at)
	}
}
