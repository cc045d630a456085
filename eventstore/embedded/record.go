package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

// Key prefixes. Every key starts with one of them so that the three key
// spaces never interleave and each can be scanned with simple bounds.
const (
	logPrefix    = 'l' // l/<seq:8 big-endian> → record
	streamPrefix = 's' // s/<stream>\x00<rev:8 big-endian> → seq:8 big-endian
	metaPrefix   = 'm' // m/<name> → store metadata
)

// recordVersion is the first byte of every encoded record. A reader that
// meets a version it does not know fails loudly instead of guessing.
const recordVersion = 1

// formatKey holds the on-disk format version of the whole store.
var formatKey = []byte("m/format")

const formatVersion = "1"

// ErrInvalidStream is returned for a stream name the store cannot hold: the
// empty string, invalid UTF-8, or a name containing NUL (NUL separates the
// name from the revision in the stream index).
var ErrInvalidStream = errors.New("embedded: invalid stream name")

// errCorrupt reports a record that does not decode.
var errCorrupt = errors.New("embedded: corrupt record")

func validateStream(stream string) error {
	switch {
	case stream == "":
		return fmt.Errorf("%w: empty", ErrInvalidStream)
	case !utf8.ValidString(stream):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidStream, stream)
	case containsNUL(stream):
		return fmt.Errorf("%w: %q contains NUL", ErrInvalidStream, stream)
	}
	return nil
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

func logKey(seq uint64) []byte {
	k := make([]byte, 2, 10)
	k[0], k[1] = logPrefix, '/'
	return binary.BigEndian.AppendUint64(k, seq)
}

func seqFromLogKey(k []byte) (uint64, error) {
	if len(k) != 10 || k[0] != logPrefix || k[1] != '/' {
		return 0, fmt.Errorf("%w: log key %x", errCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[2:]), nil
}

// streamKeyPrefix is s/<stream>\x00: every index key of the stream, and no
// key of any other stream, starts with it because names hold no NUL.
func streamKeyPrefix(stream string) []byte {
	k := make([]byte, 0, len(stream)+3+8)
	k = append(k, streamPrefix, '/')
	k = append(k, stream...)
	return append(k, 0)
}

func streamKey(stream string, rev uint64) []byte {
	return binary.BigEndian.AppendUint64(streamKeyPrefix(stream), rev)
}

// streamKeyEnd is the first key after every index key of the stream.
func streamKeyEnd(stream string) []byte {
	k := streamKeyPrefix(stream)
	k[len(k)-1] = 1
	return k
}

func revFromStreamKey(k []byte) (uint64, error) {
	if len(k) < 8+3 {
		return 0, fmt.Errorf("%w: stream key %x", errCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[len(k)-8:]), nil
}

func seqValue(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func seqFromValue(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: index value %x", errCorrupt, v)
	}
	return binary.BigEndian.Uint64(v), nil
}

// appendRecord encodes one event of the log:
//
//	version   byte (recordVersion)
//	revision  8 bytes big-endian
//	stream    uvarint length, bytes
//	id        16 bytes
//	type      uvarint length, bytes
//	schema    varint
//	time      varint Unix seconds, uvarint nanoseconds (0..999999999)
//	body      uvarint length, bytes (the rest of the record)
//
// The revision has a fixed width and place so that Append can encode the
// record before it holds the lock that decides the revision, and patch it
// in with setRecordRevision.
func appendRecord(dst []byte, stream string, rev uint64, ev domain.Event) []byte {
	dst = append(dst, recordVersion)
	dst = binary.BigEndian.AppendUint64(dst, rev)
	dst = binary.AppendUvarint(dst, uint64(len(stream)))
	dst = append(dst, stream...)
	dst = append(dst, ev.ID[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(ev.Type)))
	dst = append(dst, ev.Type...)
	dst = binary.AppendVarint(dst, int64(ev.SchemaVersion))
	dst = binary.AppendVarint(dst, ev.Time.Unix())
	dst = binary.AppendUvarint(dst, uint64(ev.Time.Nanosecond()))
	dst = binary.AppendUvarint(dst, uint64(len(ev.Body)))
	return append(dst, ev.Body...)
}

// setRecordRevision overwrites the revision of an encoded record.
func setRecordRevision(rec []byte, rev uint64) { binary.BigEndian.PutUint64(rec[1:9], rev) }

// recordSize is an upper bound of the encoded size of a record.
func recordSize(stream string, ev domain.Event) int {
	return 1 + 3*binary.MaxVarintLen64 + len(stream) + 16 + len(ev.Type) + len(ev.Body) + 4*binary.MaxVarintLen64
}

// decodeRecord decodes a record at seq. It copies everything it keeps, so
// buf may be an iterator's buffer.
func decodeRecord(seq uint64, buf []byte) (eventstore.RecordedEvent, error) {
	d := decoder{buf: buf}
	if v := d.byte(); v != recordVersion {
		return eventstore.RecordedEvent{}, fmt.Errorf("%w at %d: unknown version %d", errCorrupt, seq, v)
	}
	var re eventstore.RecordedEvent
	if rev := d.take(8); rev != nil {
		re.Revision = binary.BigEndian.Uint64(rev)
	}
	re.Stream = string(d.bytes())
	copy(re.ID[:], d.take(len(uuid.UUID{})))
	re.Type = string(d.bytes())
	schema := d.varint()
	sec := d.varint()
	nsec := d.uvarint()
	body := d.bytes()
	if d.err == nil && len(d.buf) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err == nil && (schema < math.MinInt32 || schema > math.MaxInt32 || nsec >= 1e9) {
		d.err = errors.New("field out of range")
	}
	if d.err != nil {
		return eventstore.RecordedEvent{}, fmt.Errorf("%w at %d: %v", errCorrupt, seq, d.err)
	}
	re.SchemaVersion = int(schema)
	re.Time = time.Unix(sec, int64(nsec)).UTC()
	if body != nil {
		re.Body = append([]byte{}, body...)
	}
	re.Position = eventstore.Position{Commit: seq, Prepare: seq}
	return re, nil
}

// decoder reads a record; the first failure sticks and later reads return
// zero values, so decodeRecord checks once at the end.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.buf) {
		d.err = errors.New("truncated")
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) byte() byte {
	b := d.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = errors.New("bad uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		if d.err == nil {
			d.err = errors.New("truncated")
		}
		return nil
	}
	return d.take(int(n))
}
